"""Issue 11 as it was seen, in terms the code before the fix also understands: run against the
commit before it (2a49f7d) all five fail — unbilled ARR 12000.00, revenue at risk 713300.00
(716k write-back + a −2.7k downgrade), the Family guessed, 1.00 of 150.00 EUR marked "paid", and
on Dec 2 the close showing December with 0 unposted."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from monitoring.kpis import money
from monitoring.kpis.window import Window
from sync.canonical.store import invoice_upsert, ref_set
from sync.engine.exceptions import open_exception
from sync.models import Customer, FlowStep, FlowType, Invoice, Order, Subscription
from tests.factories import FlowRunFactory, FlowStepFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def test_1_a_live_invoice_links_to_its_subscription_so_unbilled_arr_does_not_grow():
    customer = Customer.objects.create(name="Umbrella", currency="USD")
    order = Order.objects.create(number="ORD-1", customer=customer, currency="USD")
    sub = Subscription.objects.create(customer=customer, order=order, currency="USD", arr=Decimal("12000"))
    Subscription.objects.filter(pk=sub.pk).update(created_at=NOW - timedelta(days=3))
    if hasattr(Subscription, "billing_starts_at"):
        Subscription.objects.filter(pk=sub.pk).update(billing_starts_at=NOW - timedelta(days=3))
    ref_set(system="stripe", object_type="subscription", external_id="sub_1", canonical_type="subscription", canonical_id=sub.pk)
    from sync.canonical import store
    from sync.flows import invoice_posting  # noqa: F401 — the flow links it (map_invoice)

    data = {
        "invoice_number": "INV-1",
        "currency": "USD",
        "total": "1000.00",
        "finalized_at": NOW.isoformat(),
        "billing_subscription_id": "sub_1",
        "order_number": "ORD-1",
    }
    link = getattr(store, "subscription_for_invoice", None)
    kwargs = {"subscription": link(billing_system="stripe", data=data, order=order)} if link else {}
    invoice_upsert(data=data, customer=customer, order=order, **kwargs)
    assert money.unbilled_arr(Window.last_days(30, as_of=NOW))["amount"] == "0.00"


def test_3_a_write_back_only_failure_carries_no_revenue_at_risk_and_a_downgrade_none_negative():
    done = FlowRunFactory(flow_type=FlowType.CANCELLATION, status="completed", amount=Decimal("716000.00"), finished_at=NOW)
    step = FlowStepFactory(flow_run=done, name="crm_status", system="hub", status="succeeded")
    open_exception(system="salesforce", error_class="validation", message="Status write-back refused", flow_run=done, step=step)
    down = FlowRunFactory(flow_type=FlowType.AMENDMENT, status="failed", amount=Decimal("-2700.00"))
    open_exception(
        system="netsuite", error_class="validation", message="change order refused", flow_run=down, step=FlowStepFactory(flow_run=down, name="erp_change")
    )
    assert money.revenue_at_risk(Window.last_days(30, as_of=NOW))["amount"] == "2700.00"


def test_4_a_product_without_a_charge_type_is_refused_not_billed_monthly():
    from sync.connectors.errors import ConnectorError
    from sync.connectors.salesforce import mapper

    with pytest.raises(ConnectorError):
        mapper.billing_of({"ProductCode": "ONBOARD-FEE", "Family": "Subscription"})


def test_5_a_partial_payment_leaves_the_invoice_partially_paid():
    from sync.flows.base import StepContext
    from sync.flows.payment_status import map_payment

    customer = Customer.objects.create(name="Initech", currency="EUR")
    invoice_upsert(data={"invoice_number": "INV-P", "currency": "EUR", "total": "150.00", "finalized_at": NOW.isoformat()}, customer=customer, order=None)
    Invoice.objects.filter(number="INV-P").update(posted_at=NOW)
    data = {"payment_id": "wire-1", "invoice_number": "INV-P", "amount": "1.00", "currency": "EUR", "received_at": NOW.isoformat()}
    run = FlowRunFactory(flow_type=FlowType.PAYMENT_STATUS, status="running", context={"event": {"type": "payment.received.v1", "data": data}, "steps": {}})
    step = FlowStep.objects.create(flow_run=run, seq=1, name="map_payment", system="hub", idempotency_key="k")
    map_payment(StepContext(run=run, step=step))
    assert Invoice.objects.get(number="INV-P").status == "partially_paid"


def test_7_on_december_2_the_close_is_novembers_with_its_unposted_invoices():
    for _ in range(9):
        FlowRunFactory(
            flow_type=FlowType.INVOICE_POSTING, status="failed", business_started_at=datetime(2026, 11, 30, 18, tzinfo=UTC), amount=Decimal("2833.33")
        )
    close = money.close_readiness(Window.last_days(30, as_of=NOW))
    assert (close["label"], close["unposted"]) == ("November 2026", 9)
