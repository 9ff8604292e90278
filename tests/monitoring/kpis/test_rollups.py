"""Hourly KPI rollups: every figure read through them equals the figure read from raw rows, for
ragged windows, filters and timezones, and stays equal when late events change hours that were
already rolled up (the dirty-hour trigger), before and after the next refresh."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from monitoring.kpis import amendments as amendment_kpis
from monitoring.kpis import flows as flow_kpis
from monitoring.kpis import invoices as invoice_kpis
from monitoring.kpis import orders as order_kpis
from monitoring.kpis import rollups
from monitoring.kpis import sla as sla_kpis
from monitoring.kpis.summary import kpi_summary
from monitoring.kpis.window import Window
from monitoring.models import FlowRollup, RollupDirtyHour, RollupState
from sync.models import FlowRun, FlowType
from tests.factories import FlowRunFactory

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SLA_MINUTES = {FlowType.ORDER_ACTIVATION: 15, FlowType.AMENDMENT: 30, FlowType.RENEWAL: 60, FlowType.INVOICE_POSTING: 60}
TYPES = [FlowType.ORDER_ACTIVATION, FlowType.AMENDMENT, FlowType.RENEWAL, FlowType.INVOICE_POSTING, FlowType.CUSTOMER_SYNC]
ENTITIES = [("US01", "USD", Decimal("1")), ("DE01", "EUR", Decimal("1.1")), ("UK01", "GBP", Decimal("1.27"))]


def make_history(n: int = 400, seed: int = 7) -> list[FlowRun]:
    """Flows over the 8 days before NOW: mostly completed, some cancelled, some still open."""
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        flow_type = rng.choice(TYPES)
        entity, currency, rate = rng.choice(ENTITIES)
        started = NOW - timedelta(minutes=rng.uniform(5, 8 * 24 * 60))
        minutes = rng.lognormvariate(2.5, 1.0)
        status = rng.choices(["completed", "cancelled", "running", "failed", "parked"], [80, 5, 8, 4, 3])[0]
        done = started + timedelta(minutes=minutes) if status == "completed" and started + timedelta(minutes=minutes) < NOW else None
        if status == "completed" and done is None:
            status = "running"
        sla = SLA_MINUTES.get(flow_type)
        amount = Decimal(rng.choice([400, 1200, 36000]))
        runs.append(
            FlowRun(
                flow_type=flow_type,
                status=status,
                idempotency_key=f"hist-{seed}-{i}",
                document_number=f"DOC-{i}",
                legal_entity=entity,
                currency=currency,
                amount=amount,
                amount_reporting=amount * rate,
                business_started_at=started,
                business_completed_at=done,
                finished_at=done or (NOW if status == "cancelled" else None),
                sla_due_at=started + timedelta(minutes=sla) if sla else None,
                had_exception=rng.random() < 0.12,
            )
        )
    return FlowRun.objects.bulk_create(runs)


def figures(window: Window) -> dict:
    """Every window-based figure the API and the screens show."""
    summary = kpi_summary(window)
    summary.pop("window")
    return {
        "summary": summary,
        "daily_cycle_time": order_kpis.daily_cycle_time(window),
        "daily_invoice_lag": invoice_kpis.daily_invoice_lag(window),
        "daily_sla": sla_kpis.daily_sla(window),
        "daily_outcomes": amendment_kpis.daily_outcomes([FlowType.AMENDMENT, FlowType.RENEWAL], window),
        "cycle_histogram": flow_kpis.duration_histogram(FlowType.ORDER_ACTIVATION, window, flow_kpis.CYCLE_BUCKETS),
        "lag_histogram": flow_kpis.duration_histogram(FlowType.INVOICE_POSTING, window, flow_kpis.LAG_BUCKETS, include_unfinished=True),
        "cycle_by_entity": order_kpis.cycle_time_by_entity(window),
        "lag_by_entity": invoice_kpis.invoice_lag_by_entity(window),
        "renewals": amendment_kpis.renewal_accuracy(window),
    }


def both_ways(**window_kwargs) -> tuple[dict, dict, Window]:
    """The same window read from raw rows only and through the rollups."""
    with override_settings(KPI_ROLLUPS=False):
        raw_window = Window(**window_kwargs)
        raw = figures(raw_window)
        assert not raw_window.rollup_plan.uses_rollup
    rolled_window = Window(**window_kwargs)
    return raw, figures(rolled_window), rolled_window


WINDOWS = [
    pytest.param({"start": NOW - timedelta(days=7, minutes=-17), "end": NOW - timedelta(minutes=13)}, id="ragged 7 days"),
    pytest.param({"start": NOW - timedelta(days=3), "end": NOW}, id="3 days to now"),
    pytest.param({"start": NOW - timedelta(days=6), "end": NOW - timedelta(days=2, minutes=30), "entity": "DE01"}, id="entity DE01"),
    pytest.param({"start": NOW - timedelta(days=8), "end": NOW, "currency": "GBP"}, id="currency GBP"),
]


@pytest.fixture
def history(db):
    runs = make_history()
    result = rollups.refresh(now=NOW)
    assert result["hours"] > 150 and FlowRollup.objects.exists()
    assert not RollupDirtyHour.objects.filter(hour__lt=RollupState.objects.get().watermark).exists()
    return runs


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Europe/Berlin"])
@pytest.mark.parametrize("window_kwargs", WINDOWS)
def test_rollups_give_exactly_the_raw_figures(history, window_kwargs, tz):
    with timezone.override(tz):
        raw, rolled, window = both_ways(as_of=NOW, **window_kwargs)
    assert window.rollup_plan.uses_rollup
    assert rolled == raw
    assert raw["summary"]["order_cycle_time"]["count"] > 0  # the comparison is not between two empty answers


def test_a_zone_with_a_half_hour_offset_reads_raw_rows(history):
    with timezone.override("Asia/Kolkata"):
        raw, rolled, window = both_ways(start=NOW - timedelta(days=5), end=NOW, as_of=NOW)
    assert not window.rollup_plan.uses_rollup
    assert rolled == raw


def test_a_late_activation_marks_its_hours_and_the_figures_stay_exact(history):
    """An order closed-won three days ago, activated (late) two days ago, arrives after its
    hours were rolled up: readers take those hours raw until the refresh recomputes them."""
    order = next(
        r for r in history if r.flow_type == FlowType.ORDER_ACTIVATION and r.status == "running" and r.business_started_at < NOW - timedelta(days=2, hours=2)
    )
    activated = order.business_started_at + timedelta(hours=1, minutes=7)
    FlowRun.objects.filter(pk=order.pk).update(status="completed", business_completed_at=activated, finished_at=activated)
    hour = lambda t: t.replace(minute=0, second=0, microsecond=0)  # noqa: E731
    marked = set(RollupDirtyHour.objects.values_list("hour", flat=True))
    assert {hour(order.business_started_at), hour(activated), hour(order.sla_due_at)} <= marked

    window = {"start": NOW - timedelta(days=7), "end": NOW, "as_of": NOW}
    raw, rolled, plan_window = both_ways(**window)
    assert set(plan_window.rollup_plan.dirty) >= {hour(activated)}
    assert rolled == raw
    before = raw["summary"]["order_cycle_time"]["count"]

    rollups.refresh(now=NOW)
    assert not RollupDirtyHour.objects.filter(hour__lt=NOW - timedelta(hours=1)).exists()
    raw_after, rolled_after, plan_window = both_ways(**window)
    assert not plan_window.rollup_plan.dirty
    assert rolled_after == raw_after
    assert raw_after["summary"]["order_cycle_time"]["count"] == before  # the same late order, counted once


def test_a_late_insert_and_a_purge_keep_the_figures_exact(history):
    late = FlowRunFactory(
        flow_type=FlowType.INVOICE_POSTING,
        status="completed",
        business_started_at=NOW - timedelta(days=4),
        business_completed_at=NOW - timedelta(days=4) + timedelta(minutes=42),
        finished_at=NOW - timedelta(days=4),
        sla_due_at=NOW - timedelta(days=4) + timedelta(hours=1),
        legal_entity="UK01",
        currency="GBP",
    )
    purged = [r.pk for r in history if r.status in ("completed", "cancelled")][:25]
    FlowRun.objects.filter(pk__in=purged).delete()
    raw, rolled, _ = both_ways(start=NOW - timedelta(days=8), end=NOW, as_of=NOW)
    assert rolled == raw
    assert late.pk and RollupDirtyHour.objects.count() >= 2
    rollups.refresh(now=NOW)
    raw, rolled, _ = both_ways(start=NOW - timedelta(days=8), end=NOW, as_of=NOW)
    assert rolled == raw


def test_changes_the_rollups_do_not_read_mark_nothing(history):
    settled = next(r for r in history if r.status == "completed")
    RollupDirtyHour.objects.all().delete()
    FlowRun.objects.filter(pk=settled.pk).update(current_step="crm_status", sla_breached=True, parked_reason="x")
    assert not RollupDirtyHour.objects.exists()
    FlowRun.objects.filter(pk=settled.pk).update(had_exception=not settled.had_exception)
    assert RollupDirtyHour.objects.exists()


def test_hours_that_are_still_open_are_not_marked(db):
    """Flows settling in the current hour are the everyday case: no dirty mark, no contention."""
    now = timezone.now()
    FlowRunFactory(status="completed", business_started_at=now - timedelta(minutes=2), business_completed_at=now, finished_at=now)
    assert not RollupDirtyHour.objects.exists()


def test_refresh_is_idempotent_and_only_rolls_hours_that_ended_long_enough_ago(history):
    def snapshot():
        return sorted(FlowRollup.objects.values_list("hour", "flow_type", "legal_entity", "currency", "started", "completed", "due", "due_met"))

    first = snapshot()
    result = rollups.refresh(now=NOW)
    assert snapshot() == first and result["hours"] == 0
    state = RollupState.objects.get()
    assert state.watermark == NOW - timedelta(hours=1)  # 11:00–12:00 ended less than 20 min before 12:00
    assert not FlowRollup.objects.filter(hour__gte=state.watermark).exists()
    rollups.refresh(now=NOW + timedelta(minutes=25))
    assert RollupState.objects.get().watermark == NOW


def test_the_beat_task_builds_the_rollups_from_scratch(db):
    from monitoring.tasks import refresh_rollups

    make_history(60, seed=3)
    rollups.reset()
    result = refresh_rollups.apply().get()
    assert result["hours"] > 0
    rolled_up = sum(FlowRollup.objects.values_list("started", flat=True))
    assert rolled_up == FlowRun.objects.filter(status__in=["completed", "cancelled"]).count()
