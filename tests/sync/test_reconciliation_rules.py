"""Reconciliation rules and API permissions (no systems needed): rule validation names the bad
field, saving makes an audited new version, only permitted roles start runs or change rules,
and the suggest rule confirms a unique confident match but sends a weaker one to review."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sync.models import AuditEntry, ReconciliationRun
from sync.reconciliation.engine import Comparer
from sync.reconciliation.rules import DEFAULT_RULES, RuleError, Rules, validate


def test_validation_names_each_bad_field():
    bad = [
        {"name": "a", "order": 1, "kind": "tolerance", "document": "invoice", "field": "total", "sides": ["billing", "erp"], "abs": "-1"},
        {"name": "a", "order": 2, "kind": "timing", "document": "invoice", "sides": ["billing"], "days": 3},
        {"name": "c", "order": "x", "kind": "nope"},
    ]
    with pytest.raises(RuleError) as caught:
        validate(bad)
    fields = {e["field"] for e in caught.value.errors}
    assert {"rules[0].abs", "rules[1].name", "rules[1].sides", "rules[2].order", "rules[2].kind"} <= fields


def test_tolerance_is_x_percent_but_at_least_y():
    rules = Rules(
        [
            *DEFAULT_RULES[:4],
            {"name": "t", "order": 120, "kind": "tolerance", "document": "invoice", "field": "total", "sides": ["billing", "erp"], "abs": "5", "pct": "1"},
        ]
    )
    assert rules.within("invoice", "total", ("billing", "erp"), Decimal("100"), Decimal("104.99"))[0]  # 5 beats 1 % of 105
    assert not rules.within("invoice", "total", ("billing", "erp"), Decimal("100"), Decimal("105.01"))[0]
    assert rules.within("invoice", "total", ("erp", "billing"), Decimal("10000"), Decimal("10099"))[0]  # 1 % of 10099 beats 5
    assert not rules.within("invoice", "total", ("billing", "erp"), Decimal("10000"), Decimal("10102"))[0]
    assert not rules.within("order", "total", ("crm", "erp"), Decimal("1"), Decimal("1.01"))[0]  # no rule: exact


def _rec(role, key, amount, day, deal="D-1", currency="USD"):
    return {
        "role": role,
        "key": key,
        "deal_id": deal,
        "ref": f"{role}-{key}",
        "account_ref": "",
        "account_name": "Acme",
        "currency": currency,
        "amount": Decimal(amount),
        "arr": None,
        "paid": Decimal(0),
        "status": "open",
        "doc_date": day,
        "changed_at": datetime(2026, 1, 1, tzinfo=UTC),
    }


def _pair(erp_amount: str, erp_day: date, extra_candidate: bool = False):
    comparer = Comparer(Rules(DEFAULT_RULES), as_of=datetime(2026, 12, 1, tzinfo=UTC))
    held = comparer.invoice("INV-9", {"billing": [_rec("billing", "INV-9", "500.00", date(2026, 11, 1))]})
    held += comparer.invoice("NS-77", {"erp": [_rec("erp", "NS-77", erp_amount, erp_day)]})
    if extra_candidate:
        held += comparer.invoice("NS-78", {"erp": [_rec("erp", "NS-78", erp_amount, erp_day)]})
    return comparer, held  # invoice() held the missing ones for the suggest rule


def test_a_unique_confident_match_is_confirmed_a_weaker_one_goes_to_review():
    comparer, held = _pair("500.00", date(2026, 11, 1))  # same amount, same day, same deal: the ERP numbered it its own way
    assert comparer.suggestions(held) == {f.key for f in held}
    comparer, held = _pair("470.00", date(2026, 11, 4))  # 6 % off, 3 days apart: suggested, not confirmed
    assert comparer.suggestions(held) == set()
    assert all(f.needs_review for f in held)
    assert {f.suggestion["document_number"] for f in held} == {"INV-9", "NS-77"} and all(Decimal(f.suggestion["confidence"]) < Decimal("0.95") for f in held)
    comparer, held = _pair("500.00", date(2026, 11, 1), extra_candidate=True)  # two equal candidates: ambiguous, never auto-confirmed
    assert comparer.suggestions(held) == set()
    assert held[0].needs_review and held[0].suggestion["ambiguous"] is True


@pytest.mark.django_db
def test_who_may_start_runs_and_change_rules(client, executive, revops, finance):
    client.force_login(executive)
    assert client.get("/api/v1/reconciliation/runs/").status_code == 200
    assert client.post("/api/v1/reconciliation/runs/").status_code == 403
    assert client.put("/api/v1/reconciliation/rules/", {"rules": DEFAULT_RULES}, content_type="application/json").status_code == 403
    client.force_login(revops)  # works the queue: may start a run, may not change what counts as agreement
    response = client.post("/api/v1/reconciliation/runs/")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    again = client.post("/api/v1/reconciliation/runs/")
    assert again.status_code == 409 and again.json()["run"]["id"] == response.json()["id"]
    assert ReconciliationRun.objects.get().trigger == "api"
    assert client.put("/api/v1/reconciliation/rules/", {"rules": DEFAULT_RULES}, content_type="application/json").status_code == 403
    client.force_login(finance)
    loosened = [{**r, "days": 10} if r["name"] == "invoice dates" else r for r in DEFAULT_RULES]
    bad = client.put("/api/v1/reconciliation/rules/", {"rules": [{**DEFAULT_RULES[0], "kind": "fuzzy"}]}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "rules[0].kind"
    saved = client.put("/api/v1/reconciliation/rules/", {"rules": loosened, "note": "month-end posting lag"}, content_type="application/json")
    assert saved.status_code == 200 and saved.json()["version"] == 2
    assert client.get("/api/v1/reconciliation/rules/").json()["version"] == 2
    entry = AuditEntry.objects.get(object_type="reconciliation_rules")
    assert (entry.actor_label, entry.before["version"], entry.after["version"], entry.note) == ("fiona", 1, 2, "month-end posting lag")
    dry = client.post("/api/v1/reconciliation/rules/dry-run/", {"rules": loosened}, content_type="application/json")
    assert dry.status_code == 409  # no run has succeeded: nothing to compare against
