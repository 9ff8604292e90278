"""A reconciliation run end to end.

request_run() records the run and hands it to the `recon` queue (after commit); execute()
is what the worker does: read each role's system into the snapshot, derive the joins, compare
with the run's rule set, write the breaks in batches, open one `reconciliation` exception per
break (revenue at risk, deal id) and resolve — audited — the open ones this run no longer finds.
A run that fails (a system could not be read) resolves nothing: silence is not agreement.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from q2c_portal.celery import Queue, TaskName
from sync.connectors import registry
from sync.dispatch import publish
from sync.engine.exceptions import open_exception, resolve_by_fingerprint
from sync.models import ReconciliationBreak, ReconciliationRun, SyncException

from . import snapshot
from .engine import Found, compare
from .readers import reader_for
from .rules import Rules, active_rule_set

log = logging.getLogger(__name__)
LOCK = "q2c-reconciliation-run"
SOURCE = "reconciliation_run"  # exceptions a run opened carry payload.source = SOURCE
PHASES = [("crm", 5, 30), ("billing", 30, 55), ("erp", 55, 80)]
BREAK_BATCH = 500
STALE_AFTER = timedelta(hours=6)


class AlreadyRunning(Exception):
    def __init__(self, run: ReconciliationRun):
        super().__init__(f"reconciliation run {run.pk} is {run.status}")
        self.run = run


def _fail_stale() -> None:
    cutoff = timezone.now() - STALE_AFTER
    ReconciliationRun.objects.filter(status__in=ReconciliationRun.ACTIVE_STATUSES, started_at__lt=cutoff).update(
        status=ReconciliationRun.Status.FAILED, finished_at=timezone.now(), error="no worker finished it within 6 hours"
    )


def request_run(*, trigger: str, user=None, dispatch: bool = True) -> ReconciliationRun:
    """A new queued run (AlreadyRunning if one is queued or running)."""
    _fail_stale()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [LOCK + ":request"])
        active = ReconciliationRun.objects.filter(status__in=ReconciliationRun.ACTIVE_STATUSES).order_by("started_at").first()
        if active is not None:
            raise AlreadyRunning(active)
        run = ReconciliationRun.objects.create(
            trigger=trigger, requested_by=user if getattr(user, "is_authenticated", False) else None, rule_set=active_rule_set()
        )
        if dispatch:
            transaction.on_commit(lambda: publish(TaskName.RECONCILE, args=[run.pk], queue=Queue.RECON, expires=3600))
    return run


def _progress(run_id: int, **fields) -> None:
    ReconciliationRun.objects.filter(pk=run_id).update(**fields)


def _estimate(role: str) -> int:
    last = ReconciliationRun.objects.filter(status=ReconciliationRun.Status.SUCCEEDED).order_by("-started_at").values_list("records", flat=True).first()
    return max(1, int((last or {}).get(role) or 1000))


def _previous_run(run: ReconciliationRun) -> ReconciliationRun | None:
    return ReconciliationRun.objects.filter(status=ReconciliationRun.Status.SUCCEEDED, started_at__lt=run.started_at).order_by("-started_at").first()


def _exception_for(found: Found, run: ReconciliationRun, value_reporting: Decimal) -> SyncException:
    return open_exception(
        system=registry.system_of(found.system) if found.system in ("crm", "billing", "erp") else found.system,
        error_class="reconciliation",
        message=f"{ReconciliationBreak.BreakType(found.break_type).label}: {found.message}",
        account_name=found.account_name,
        document_number=found.document_number,
        amount=abs(found.value),
        currency=found.value_currency or found.currency,
        fingerprint_extra=found.key,
        revenue_at_risk=value_reporting,
        payload={
            "source": SOURCE,
            "break_key": found.key,
            "break_type": found.break_type,
            "document_type": found.document_type,
            "deal_id": found.deal_id,
            "run_id": run.pk,
            "rule": found.rule,
            "values": {k: (str(v) if v is not None else None) for k, v in found.values.items()},
            "sides": found.sides,
            "needs_review": found.needs_review,
            "suggestion": found.suggestion,
        },
    )


def _write(run: ReconciliationRun, batch: list[Found], previous: ReconciliationRun | None, totals: dict, exception_ids: set[int]) -> None:
    seen = dict(ReconciliationBreak.objects.filter(run=previous, key__in=[f.key for f in batch]).values_list("key", "first_seen")) if previous else {}
    rows = []
    for found in batch:
        value, diff = found.reporting()
        exc = _exception_for(found, run, value)
        exception_ids.add(exc.pk)
        bucket = totals.setdefault(found.break_type, {"count": 0, "value": Decimal(0)})
        bucket["count"] += 1
        bucket["value"] += value
        rows.append(
            ReconciliationBreak(
                run=run,
                key=found.key,
                break_type=found.break_type,
                document_type=found.document_type,
                document_number=found.document_number[:64],
                deal_id=found.deal_id[:64],
                account_name=found.account_name[:255],
                system=found.system,
                rule=found.rule[:128],
                currency=found.currency,
                crm_value=found.values.get("crm"),
                billing_value=found.values.get("billing"),
                erp_value=found.values.get("erp"),
                sides=found.sides,
                difference=found.difference,
                difference_reporting=diff or Decimal(0),
                value_reporting=value,
                document_date=found.document_date,
                first_seen=seen.get(found.key) or run.began_at,
                needs_review=found.needs_review,
                suggestion=found.suggestion,
                exception=exc,
            )
        )
    ReconciliationBreak.objects.bulk_create(rows, batch_size=BREAK_BATCH)


def _resolve(run: ReconciliationRun, exception_ids: set[int]) -> int:
    stale = (
        SyncException.objects.filter(error_class="reconciliation", status__in=SyncException.OPEN_STATUSES, payload__source=SOURCE)
        .exclude(pk__in=exception_ids)
        .values_list("fingerprint", flat=True)
    )
    resolved = 0
    for fingerprint in list(stale):
        resolved += resolve_by_fingerprint(fingerprint, note=f"Reconciliation run #{run.pk} found the systems in agreement.")
    return resolved


def execute(run_id: int) -> ReconciliationRun | None:
    """Run a queued reconciliation (one at a time: others wait for the lock's holder to finish)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [LOCK])
        if not cursor.fetchone()[0]:
            log.info("reconciliation run %s: another run holds the lock", run_id)
            return ReconciliationRun.objects.filter(pk=run_id).first()
    try:
        return _execute(run_id)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [LOCK])


def _execute(run_id: int) -> ReconciliationRun | None:
    run = ReconciliationRun.objects.select_related("rule_set").filter(pk=run_id).first()
    if run is None or run.status != ReconciliationRun.Status.QUEUED:
        return run
    run.rule_set = run.rule_set or active_rule_set()
    run.status, run.began_at, run.phase, run.progress = ReconciliationRun.Status.RUNNING, timezone.now(), "reading", 1
    run.save(update_fields=["status", "began_at", "phase", "progress", "rule_set"])
    records: dict[str, int] = {}
    try:
        rules = Rules(run.rule_set.rules)
        for role, start, end in PHASES:
            system, reader = reader_for(role)
            estimate = _estimate(role)
            _progress(run.pk, phase=f"reading {system}", progress=start)

            def report(count: int, start=start, end=end, estimate=estimate, role=role) -> None:
                records[role] = count
                _progress(run.pk, progress=start + min(end - start - 1, (end - start) * count // estimate), records=records)

            began = time.monotonic()
            snapshot.write(run.pk, reader.read(report))
            log.info("reconciliation run %s: read %s records from %s in %.1f s", run.pk, records.get(role, 0), system, time.monotonic() - began)
        records.update(snapshot.counts(run.pk))
        _progress(run.pk, phase="comparing", progress=80, records=records)
        snapshot.derive(run.pk)
        previous = _previous_run(run)
        found_stream, comparer = compare(run.pk, rules, as_of=run.began_at)
        totals: dict[str, dict] = {}
        exception_ids: set[int] = set()
        batch: list[Found] = []
        for found in found_stream:
            batch.append(found)
            if len(batch) >= BREAK_BATCH:
                _write(run, batch, previous, totals, exception_ids)
                batch = []
                _progress(run.pk, progress=min(94, 80 + comparer.stats.documents * 14 // max(1, sum(records.values()))))
        if batch:
            _write(run, batch, previous, totals, exception_ids)
        _progress(run.pk, phase="resolving", progress=95)
        resolved = _resolve(run, exception_ids)
        stats = comparer.stats
        run.refresh_from_db()
        run.status = ReconciliationRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.phase, run.progress = "done", 100
        run.records = records
        run.customers_checked = len(stats.customers)
        run.documents_checked = stats.documents
        run.documents_matched = stats.matched
        run.documents_pending = stats.pending
        run.suggested = stats.suggested
        run.breaks_found = sum(b["count"] for b in totals.values())
        run.breaks_resolved = resolved
        run.breaks_by_type = {k: {"count": v["count"], "value": str(v["value"])} for k, v in totals.items()}
        run.breaks_value = sum((v["value"] for v in totals.values()), Decimal(0))
        run.save()
        snapshot.drop_older(run.pk)  # the latest snapshot stays, for dry runs
        log.info("reconciliation run %s: %s documents, %s breaks, %s resolved", run.pk, stats.documents, run.breaks_found, resolved)
        return run
    except Exception as exc:
        log.exception("reconciliation run %s failed", run_id)
        snapshot.drop(run.pk)
        ReconciliationRun.objects.filter(pk=run.pk).update(
            status=ReconciliationRun.Status.FAILED, finished_at=timezone.now(), phase="failed", error=f"{type(exc).__name__}: {exc}"[:2000], records=records
        )
        raise


def scheduled() -> int | None:
    """Beat's entry: the queued run a lost message left behind, else a new one; run it here."""
    _fail_stale()
    queued = ReconciliationRun.objects.filter(status=ReconciliationRun.Status.QUEUED).order_by("started_at").first()
    if queued is None:
        try:
            queued = request_run(trigger=ReconciliationRun.Trigger.SCHEDULE, dispatch=False)
        except AlreadyRunning:
            return None
    done = execute(queued.pk)
    return done.pk if done else None
