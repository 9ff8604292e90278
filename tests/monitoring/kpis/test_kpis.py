"""The KPI API against a known scenario: every figure computed by hand (DESIGN.md definitions).

The clock is fixed at NOW so ages of unfinished flows are exact. Percentiles are
percentile_cont (linear interpolation): for sorted values v[0..n-1] and fraction p the
position is p·(n−1); between neighbours the value is interpolated.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from sync.engine.exceptions import open_exception, resolve_by_fingerprint
from sync.models import CurrencyRate, FlowRun, FlowType
from tests.factories import FlowRunFactory, FlowStepFactory

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

# Order cycle times (minutes), sorted: p50 at position 4.5 → (12+15)/2 = 13.5 min;
# p90 at 8.1 → 40 + 0.1·(90−40) = 45 min; p95 at 8.55 → 40 + 0.55·50 = 67.5 min.
ORDER_MINUTES = [5, 7, 8, 10, 12, 15, 20, 25, 40, 90]
P50_CYCLE, P90_CYCLE, P95_CYCLE = 13.5 * 60, 45 * 60, 67.5 * 60

# Invoice lags (minutes): five posted, one unposted finalized 120 min ago (counts at its age).
# Sorted [2, 4, 6, 10, 30, 120]: p50 at 2.5 → (6+10)/2 = 8 min; p95 at 4.75 → 30 + 0.75·90 = 97.5 min.
INVOICE_MINUTES = [2, 4, 6, 10, 30]
P50_LAG, P95_LAG = 8 * 60, 97.5 * 60


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock(NOW)
    monkeypatch.setattr(timezone, "now", c)
    return c


def completed(flow_type, started, minutes, sla_minutes=None, **kw):
    done = started + minutes * MIN
    return FlowRunFactory(
        flow_type=flow_type,
        status=FlowRun.Status.COMPLETED,
        business_started_at=started,
        business_completed_at=done,
        finished_at=done,
        sla_due_at=started + sla_minutes * MIN if sla_minutes else None,
        **kw,
    )


def running(flow_type, started, sla_minutes=None, **kw):
    kw.setdefault("status", FlowRun.Status.RUNNING)
    return FlowRunFactory(flow_type=flow_type, business_started_at=started, sla_due_at=started + sla_minutes * MIN if sla_minutes else None, **kw)


@pytest.fixture(params=["raw rows", "hourly rollups"])
def rollup_mode(request):
    """Every scenario test runs twice: once reading raw flow runs only, once after the hourly
    rollups were built (hours that ended 20 min before NOW come from the rollups, the rest raw)."""
    return request.param


@pytest.fixture
def scenario(db, clock, rollup_mode):
    """Orders, amendments, renewals, invoices, customers and exceptions with hand-chosen times."""
    clock.now = NOW - 10 * MIN  # exceptions open a little before the window's end
    CurrencyRate.objects.create(currency="EUR", rate_to_reporting=Decimal("1.10"), valid_from=date(2026, 1, 1))
    day_ago = NOW - timedelta(days=2)
    for i, minutes in enumerate(ORDER_MINUTES):
        completed(FlowType.ORDER_ACTIVATION, day_ago + i * timedelta(hours=1), minutes, sla_minutes=15, legal_entity="US01" if i % 2 else "DE01")
    completed(FlowType.ORDER_ACTIVATION, NOW - timedelta(days=40), 3, sla_minutes=15)  # outside the window
    # in flight: breached (30 min old, EUR, no engine conversion → the CurrencyRate applies), at risk (13 of 15 min), fresh (5 min)
    breached_order = running(
        FlowType.ORDER_ACTIVATION, NOW - 30 * MIN, 15, amount=Decimal("5000"), currency="EUR", amount_reporting=Decimal("0"), legal_entity="DE01"
    )
    at_risk_order = running(FlowType.ORDER_ACTIVATION, NOW - 13 * MIN, 15)
    running(FlowType.ORDER_ACTIVATION, NOW - 5 * MIN, 15)

    # four amendments: three clean, one fails with two different open exceptions (counts once in revenue at risk)
    for i in range(3):
        completed(FlowType.AMENDMENT, NOW - timedelta(days=3, hours=i), 10, sla_minutes=30, amount=Decimal("1200"))
    failed_amendment = running(FlowType.AMENDMENT, NOW - timedelta(days=3), 30, status=FlowRun.Status.FAILED, amount=Decimal("2400"), document_number="AMD-7")
    step = FlowStepFactory(
        flow_run=failed_amendment, name="billing_change", system="stripe", attempts=3, error_class="timeout", started_at=NOW - timedelta(days=3)
    )
    open_exception(system="netsuite", error_class="validation", message="Invalid subsidiary for item", flow_run=failed_amendment)
    open_exception(system="stripe", error_class="timeout", message="Read timed out", flow_run=failed_amendment, step=step)

    # renewals: two due, one clean, one needed a fix
    completed(FlowType.RENEWAL, NOW - timedelta(days=5), 20)
    completed(FlowType.RENEWAL, NOW - timedelta(days=6), 20, had_exception=True)

    # invoices: five posted with chosen lags, one unposted for 120 minutes (SLA 60 min: breached)
    for i, minutes in enumerate(INVOICE_MINUTES):
        completed(FlowType.INVOICE_POSTING, NOW - timedelta(days=1, hours=i), minutes, sla_minutes=60, document_number=f"INV-{i}", amount=Decimal("800"))
    unposted = running(FlowType.INVOICE_POSTING, NOW - 120 * MIN, 60, status=FlowRun.Status.WAITING, document_number="INV-LATE", amount=Decimal("1000"))

    # customers: four synced, one duplicate conflict
    customers = [completed(FlowType.CUSTOMER_SYNC, NOW - timedelta(days=4, hours=i), 1, amount=Decimal("0")) for i in range(4)]
    open_exception(system="hub", error_class="duplicate", message="Two accounts share tax id", flow_run=customers[0])

    # a missing payment with no flow, and an auth error opened 5 h ago and resolved 3 h later
    open_exception(
        system="stripe",
        error_class="missing",
        message="Finalized invoice has no payment status past its due date",
        document_number="INV-9",
        amount=Decimal("300"),
        currency="USD",
        fingerprint_extra="payment:INV-9",
    )
    clock.now = NOW - timedelta(hours=5)
    auth = open_exception(system="salesforce", error_class="auth", message="Session expired")
    clock.now = NOW - timedelta(hours=2)
    resolve_by_fingerprint(auth.fingerprint, note="token rotated")
    clock.now = NOW
    if rollup_mode == "hourly rollups":
        from monitoring.kpis.rollups import refresh
        from monitoring.models import FlowRollup

        refresh(now=NOW)
        assert FlowRollup.objects.exists()
    return {"breached_order": breached_order, "at_risk_order": at_risk_order, "failed_amendment": failed_amendment, "unposted": unposted}


@pytest.fixture
def kpis(client, executive, scenario):
    client.force_login(executive)
    response = client.get("/api/v1/kpis/")
    assert response.status_code == 200
    return response.json()


def test_order_cycle_time_percentiles_match_the_hand_computed_values(kpis):
    assert kpis["order_cycle_time"] == {
        "count": 10,
        "p50_seconds": P50_CYCLE,
        "p90_seconds": P90_CYCLE,
        "p95_seconds": P95_CYCLE,
        "in_flight": 3,
    }


def test_amendment_failure_rate_counts_flows_that_raised_an_exception(kpis):
    assert kpis["amendments"] == {"started": 4, "with_exception": 1, "failure_rate": 0.25, "first_pass_success_rate": 0.75, "completed": 3}


def test_invoice_sync_lag_counts_unposted_invoices_at_their_age(kpis):
    assert kpis["invoice_sync_lag"] == {
        "posted": 5,
        "p50_seconds": P50_LAG,
        "p95_seconds": P95_LAG,
        "unposted": 1,
        "oldest_unposted_seconds": 7200.0,
    }


def test_exceptions_are_counted_by_class_system_and_flow_with_mean_time_to_resolve(kpis):
    assert kpis["exceptions"] == {
        "open": 4,
        "by_error_class": {"validation": 1, "timeout": 1, "duplicate": 1, "missing": 1},
        "by_system": {"stripe": 2, "netsuite": 1, "hub": 1},
        "by_flow": {"amendment": 2, "customer_sync": 1, "(none)": 1},
        "opened": 5,
        "resolved": 1,
        "mttr_seconds": 3 * 3600.0,
    }


def test_sla_due_met_breached_and_at_risk_per_flow_type(kpis):
    sla = kpis["sla"]
    # orders: 15 min target; 5,7,8,10,12,15 met; 20,25,40,90 late; the 30-min-old one past due; 13 of 15 min at risk
    assert sla["order_activation"] == {"target_seconds": 900, "due": 11, "met": 6, "breached": 5, "at_risk": 1, "compliance": round(6 / 11, 4)}
    assert sla["amendment"] == {"target_seconds": 1800, "due": 4, "met": 3, "breached": 1, "at_risk": 0, "compliance": 0.75}
    assert sla["invoice_posting"] == {"target_seconds": 3600, "due": 6, "met": 5, "breached": 1, "at_risk": 0, "compliance": round(5 / 6, 4)}
    assert sla["renewal"]["due"] == 0 and sla["renewal"]["compliance"] is None


def test_revenue_at_risk_counts_each_flow_once_in_reporting_currency(kpis):
    # EUR 5000 × 1.10 (rate table) + amendment 2400 (two open exceptions, once) + unposted invoice 1000
    # + the missing payment with no flow 300; the at-risk order and the customer-sync conflict (0) add nothing.
    assert kpis["revenue_at_risk"] == {"currency": "USD", "amount": "9200.00"}


def test_retries_duplicates_and_renewal_accuracy(kpis):
    assert kpis["retries"] == {"total": 2, "by_system": {"stripe": 2}, "by_error_class": {"timeout": 2}}
    assert kpis["duplicate_rate"] == {"conflicts": 1, "customers_synced": 4, "rate": 0.25}
    assert kpis["renewal_accuracy"] == {"due": 2, "completed_without_exception": 1, "accuracy": 0.5}


def test_the_api_answers_exactly_the_contract_keys(kpis):
    assert list(kpis) == [
        "window",
        "order_cycle_time",
        "amendments",
        "invoice_sync_lag",
        "exceptions",
        "sla",
        "revenue_at_risk",
        "retries",
        "duplicate_rate",
        "renewal_accuracy",
        # issue 11: the money figures of docs/MONEY.md joined the contract
        "records_out_of_date",
        "dollars_in_flight",
        "arr",
        "unbilled_arr",
        "payments",
        "close_readiness",
        "unconverted",
    ]
    assert set(kpis["order_cycle_time"]) == {"count", "p50_seconds", "p90_seconds", "p95_seconds", "in_flight"}
    assert set(kpis["invoice_sync_lag"]) == {"posted", "p50_seconds", "p95_seconds", "unposted", "oldest_unposted_seconds"}
    assert all(set(v) == {"target_seconds", "due", "met", "breached", "at_risk", "compliance"} for v in kpis["sla"].values())
    assert kpis["window"]["end"] == NOW.isoformat()


def test_the_entity_filter_narrows_the_flows(client, executive, scenario):
    client.force_login(executive)
    body = client.get("/api/v1/kpis/", {"entity": "DE01"}).json()
    # DE01 holds the even-indexed orders (5, 8, 12, 20, 40 min) and the breached EUR order
    assert body["order_cycle_time"]["count"] == 5
    assert body["order_cycle_time"]["p50_seconds"] == 12 * 60.0
    assert body["order_cycle_time"]["in_flight"] == 1
    assert body["revenue_at_risk"]["amount"] == "5500.00"


def test_an_explicit_window_excludes_what_falls_outside(client, executive, scenario):
    client.force_login(executive)
    body = client.get("/api/v1/kpis/", {"start": (NOW - timedelta(days=50)).isoformat(), "end": (NOW - timedelta(days=30)).isoformat()}).json()
    assert body["order_cycle_time"]["count"] == 1
    assert body["order_cycle_time"]["p50_seconds"] == 180.0
    assert body["amendments"]["started"] == 0 and body["amendments"]["failure_rate"] is None


def test_the_overview_shows_the_same_numbers_as_the_api(client, executive, kpis):
    html = client.get("/").content.decode()
    tiles = {key: html.split(f'data-kpi="{key}"', 1)[1].split("</a>", 1)[0] for key in ("cycle", "lag", "sla", "exceptions", "amendments")}
    assert "13m 30s" in tiles["cycle"] and "p90 45m 00s" in tiles["cycle"] and "10 activated" in tiles["cycle"]
    assert "1h 37m" in tiles["lag"] and "p50 8m 00s" in tiles["lag"] and "1 unposted" in tiles["lag"]
    assert "66.7%" in tiles["sla"] and "14 of 21 met" in tiles["sla"]  # (6 + 3 + 5) ÷ (11 + 4 + 6)
    assert ">4<" in tiles["exceptions"].replace(" ", "") and "MTTR 3h 0m" in tiles["exceptions"]
    assert 'data-figure="revenue-at-risk">USD 9,200.00<' in html
    assert "25.0%" in tiles["amendments"] and "1 of 4" in tiles["amendments"]


def test_the_overview_shows_money_in_flight_and_close_readiness(client, executive, scenario):
    client.force_login(executive)
    html = client.get("/").content.decode()
    # in flight: 3 orders (12000 + 12000 USD + EUR 5000 → 5500) and the unposted invoice 1000
    assert 'data-figure="in-flight">USD 30,500.00<' in html
    assert "Not ready" in html and "1 unposted invoice" in html


def test_a_kpi_tile_links_to_the_rows_behind_it(client, executive, scenario):
    client.force_login(executive)
    response = client.get("/orders/", {"basis": "completed", "days": 30})
    assert response.status_code == 200
    assert response.context["page_obj"].paginator.count == 10  # the 10 activations behind the p50 tile


def test_a_histogram_bar_links_to_exactly_its_orders(client, executive, scenario):
    client.force_login(executive)
    bars = client.get("/orders/").context["histogram"]
    bar = next(b for b in bars if b["min_seconds"] == 900 and b["max_seconds"] == 1800)  # 15–30 min: 15, 20, 25
    assert bar["n"] == 3
    rows = client.get("/orders/", {"basis": "completed", "min_seconds": 900, "max_seconds": 1800}).context["page_obj"]
    assert rows.paginator.count == 3
