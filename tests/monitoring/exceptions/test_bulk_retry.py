"""Bulk retry on a real Celery worker: 1,000 exceptions, progress to 100 %, each step retried
exactly once even when the job's message is delivered twice."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal

import pytest
from django.db.models import Count
from django.utils import timezone

from sync.models import AuditEntry, FlowRun, FlowStep, SyncException

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

N = 1000


def _make_failed_payment_flows(n: int, cause: str) -> list[int]:
    """n payment-status flows failed at their first (hub) step, each with an open exception.

    When the worker re-runs one, the step parks (its invoice is unknown): no external call.
    """
    now = timezone.now()
    runs = FlowRun.objects.bulk_create(
        FlowRun(
            flow_type="payment_status",
            status="failed",
            idempotency_key=f"bulk-test:{cause}:{i}",
            document_number=f"PAY-{i:05d}",
            account_name="Globex Corporation",
            amount=Decimal("100.00"),
            currency="USD",
            amount_reporting=Decimal("100.00"),
            business_started_at=now,
            context={"event": {"data": {"invoice_number": f"INV-NOPE-{cause}-{i}", "payment_id": f"p{i}", "amount": "100.00", "currency": "USD"}}, "steps": {}},
        )
        for i in range(n)
    )
    steps = FlowStep.objects.bulk_create(
        FlowStep(flow_run=run, seq=1, name="map_payment", system="hub", status="failed", attempts=1, idempotency_key=f"q2c-{run.idempotency_key}:map_payment")
        for run in runs
    )
    SyncException.objects.bulk_create(
        SyncException(
            fingerprint=hashlib.sha256(f"{cause}{s.pk}".encode()).hexdigest()[:40],
            cause_key=cause,
            flow_run_id=s.flow_run_id,
            step=s,
            flow_type="payment_status",
            step_name="map_payment",
            system="hub",
            error_class="validation",
            message="Invoice not posted",
            account_name="Globex Corporation",
            document_number=f"PAY-{i:05d}",
            amount=Decimal("100.00"),
            currency="USD",
            revenue_at_risk=Decimal("100.00"),
            first_seen=now,
            last_seen=now,
        )
        for i, s in enumerate(steps)
    )
    return [s.pk for s in steps]


def test_bulk_retry_of_1000_exceptions_retries_each_step_exactly_once(celery_worker_process, itops, client):
    from monitoring.exceptions.filters import ExceptionFilterSet
    from monitoring.exceptions.services import bulk_retry_start
    from monitoring.exceptions.tasks import BULK_QUEUE, bulk_retry
    from monitoring.models import BulkJob

    step_ids = _make_failed_payment_flows(N, "bulk-cause")
    untouched = _make_failed_payment_flows(3, "other-cause")  # outside the filter: never retried

    job = bulk_retry_start(user=itops, filters=ExceptionFilterSet({"cause": "bulk-cause"}), expected_total=N)  # queued on commit
    bulk_retry.apply_async(args=[job.pk], queue=BULK_QUEUE)  # the same job message delivered a second time

    client.force_login(itops)
    seen_percents = []
    deadline = time.monotonic() + 600  # a guard against hanging, not a speed assertion
    while True:
        response = client.get(f"/exceptions/bulk-jobs/{job.pk}/", HTTP_HX_REQUEST="true")
        job.refresh_from_db()
        seen_percents.append(job.percent)
        if response.status_code == 286:  # htmx polling stops once the job is done
            break
        assert response.status_code == 200 and 'hx-trigger="every 1s"' in response.content.decode()
        assert time.monotonic() < deadline, f"bulk job stuck at {job.percent}%:\n{celery_worker_process.output()}"
        time.sleep(0.5)

    assert "100%" in response.content.decode()
    assert seen_percents == sorted(seen_percents) and seen_percents[-1] == 100  # progress only moves forward
    assert (job.status, job.total, job.retried, job.skipped, job.failed) == ("done", N, N, 0, 0)

    requested = (
        AuditEntry.objects.filter(object_type="flow", action="retry_requested", actor=itops)
        .values("object_id", "after__step")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_step = {(r["object_id"], r["after__step"]): r["n"] for r in requested}
    runs = dict(FlowStep.objects.filter(pk__in=step_ids).values_list("flow_run_id", "name"))
    assert len(per_step) == N
    assert set(per_step.values()) == {1}  # each step exactly once, though the job ran twice
    assert set(per_step) == {(str(run_id), name) for run_id, name in runs.items()}
    assert SyncException.objects.filter(cause_key="bulk-cause", status="retrying", retries=1).count() == N
    assert SyncException.objects.filter(step_id__in=untouched, status="open", retries=0).count() == 3
    assert BulkJob.objects.get(pk=job.pk).items.filter(state="retried").count() == N
