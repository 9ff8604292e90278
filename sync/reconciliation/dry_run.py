"""A dry run: a changed rule set against the latest run's snapshot (what each system held
then), compared with what that run found. Nothing is written: no run, no break, no exception."""

from __future__ import annotations

from collections import Counter

from sync.models import ReconciliationBreak, ReconciliationRun

from .engine import compare
from .rules import Rules

LIST_LIMIT = 500


class NoSnapshot(LookupError):
    pass


def _brief(found) -> dict:
    value, _diff = found.reporting()
    return {
        "key": found.key,
        "break_type": found.break_type,
        "document_type": found.document_type,
        "document_number": found.document_number,
        "deal_id": found.deal_id,
        "system": found.system,
        "rule": found.rule,
        "values": {k: (str(v) if v is not None else None) for k, v in found.values.items()},
        "value_reporting": str(value),
        "message": found.message,
    }


def dry_run(rules: list[dict]) -> dict:
    checked = Rules(rules)
    run = ReconciliationRun.objects.filter(status=ReconciliationRun.Status.SUCCEEDED).order_by("-started_at").first()
    if run is None:
        raise NoSnapshot("no reconciliation run has succeeded yet: there is nothing to compare the rules against")
    current = {key: (kind, number) for key, kind, number in ReconciliationBreak.objects.filter(run=run).values_list("key", "break_type", "document_number")}
    stream, comparer = compare(run.pk, checked, as_of=run.began_at)
    would_find: list[dict] = []
    new, kept = Counter(), Counter()
    found_keys: set[str] = set()
    total = 0
    for found in stream:
        total += 1
        found_keys.add(found.key)
        if found.key in current:
            kept[found.break_type] += 1
        else:
            new[found.break_type] += 1
            if len(would_find) < LIST_LIMIT:
                would_find.append(_brief(found))
    absorbed_keys = [k for k in current if k not in found_keys]
    absorbed = list(
        ReconciliationBreak.objects.filter(run=run, key__in=absorbed_keys[:LIST_LIMIT]).values(
            "key", "break_type", "document_type", "document_number", "deal_id", "system", "rule", "crm_value", "billing_value", "erp_value", "value_reporting"
        )
    )
    for row in absorbed:
        for name in ("crm_value", "billing_value", "erp_value", "value_reporting"):
            row[name] = str(row[name]) if row[name] is not None else None
    return {
        "against_run": run.pk,
        "rule_set_version": run.rule_set.version if run.rule_set_id else None,
        "breaks": total,
        "breaks_now": len(current),
        "would_find": {"count": sum(new.values()), "by_type": dict(new), "breaks": would_find},
        "would_absorb": {"count": len(absorbed_keys), "by_type": dict(Counter(current[k][0] for k in absorbed_keys)), "breaks": absorbed},
        "unchanged": sum(kept.values()),
        "documents": comparer.stats.documents,
        "matched": comparer.stats.matched,
    }
