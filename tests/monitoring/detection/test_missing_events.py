"""Missing events: what never arrived opens an exception with revenue at risk, and resolves when it arrives."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from monitoring.detection.missing_events import detect_missing_events
from sync.models import Customer, FlowRun, FlowStep, FlowType, Invoice, Payment, Subscription, SyncException
from tests.factories import FlowRunFactory, FlowStepFactory

pytestmark = pytest.mark.django_db


def missing(kind):
    return SyncException.objects.filter(error_class="missing", payload__missing=kind)


def test_a_closed_won_order_without_an_erp_sales_order_past_its_sla_opens_once_and_resolves():
    now = timezone.now()
    run = FlowRunFactory(
        flow_type=FlowType.ORDER_ACTIVATION,
        status=FlowRun.Status.WAITING,
        document_number="ORD-501",
        amount=Decimal("24000"),
        business_started_at=now - timedelta(minutes=40),
        sla_due_at=now - timedelta(minutes=25),
    )
    step = FlowStepFactory(flow_run=run, seq=4, name="erp_sales_order", system="netsuite", status=FlowStep.Status.RETRY)
    FlowRunFactory(
        flow_type=FlowType.ORDER_ACTIVATION,
        status=FlowRun.Status.RUNNING,
        business_started_at=now - timedelta(minutes=5),
        sla_due_at=now + timedelta(minutes=10),
    )

    assert detect_missing_events()["erp_sales_order"] == {"opened": 1, "resolved": 0}
    exc = missing("erp_sales_order").get()
    assert (exc.system, exc.document_number, exc.flow_run_id, exc.revenue_at_risk, exc.status) == ("netsuite", "ORD-501", run.pk, Decimal("24000"), "open")
    assert detect_missing_events()["erp_sales_order"] == {"opened": 0, "resolved": 0}
    assert missing("erp_sales_order").get().occurrences == 1

    FlowStep.objects.filter(pk=step.pk).update(status=FlowStep.Status.SUCCEEDED)
    assert detect_missing_events()["erp_sales_order"] == {"opened": 0, "resolved": 1}
    assert missing("erp_sales_order").get().status == "resolved"


def test_an_order_that_already_failed_with_its_own_exception_is_not_reported_missing_as_well():
    from sync.engine.exceptions import open_exception

    now = timezone.now()
    run = FlowRunFactory(
        flow_type=FlowType.ORDER_ACTIVATION,
        status=FlowRun.Status.FAILED,
        document_number="ORD-502",
        business_started_at=now - timedelta(minutes=40),
        sla_due_at=now - timedelta(minutes=25),
    )
    step = FlowStepFactory(flow_run=run, seq=1, name="validate", system="hub", status=FlowStep.Status.FAILED)
    open_exception(system="hub", error_class="validation", message="Unknown legal entity: EU01", flow_run=run, step=step)
    assert detect_missing_events()["erp_sales_order"] == {"opened": 0, "resolved": 0}
    assert SyncException.objects.filter(flow_run=run).count() == 1


def test_an_active_subscription_with_no_invoice_after_its_period_opens_with_a_month_at_risk_and_resolves():
    now = timezone.now()
    customer = Customer.objects.create(name="Initech", currency="EUR")
    sub = Subscription.objects.create(customer=customer, currency="EUR", arr=Decimal("12000"), current_period_end=now - timedelta(days=1))
    Subscription.objects.create(customer=customer, currency="EUR", arr=Decimal("6000"), current_period_end=now + timedelta(days=20))

    assert detect_missing_events()["invoice"] == {"opened": 1, "resolved": 0}
    exc = missing("invoice").get()
    assert exc.system == "stripe" and exc.amount == Decimal("1000.00") and exc.currency == "EUR" and exc.account_name == "Initech"

    Invoice.objects.create(number="INV-900", customer=customer, subscription=sub, currency="EUR", total=Decimal("1000"), finalized_at=now)
    assert detect_missing_events()["invoice"] == {"opened": 0, "resolved": 1}


def test_a_finalized_invoice_past_due_without_a_payment_status_opens_and_resolves_when_paid(client, executive):
    now = timezone.now()
    customer = Customer.objects.create(name="Globex", currency="USD")
    invoice = Invoice.objects.create(
        number="INV-77",
        customer=customer,
        currency="USD",
        total=Decimal("450.00"),
        finalized_at=now - timedelta(days=20),
        due_date=(now - timedelta(days=3)).date(),
        status=Invoice.Status.OPEN,
    )
    Invoice.objects.create(
        number="INV-78",
        customer=customer,
        currency="USD",
        total=Decimal("90"),
        finalized_at=now - timedelta(days=2),
        due_date=(now + timedelta(days=12)).date(),
        status=Invoice.Status.OPEN,
    )

    assert detect_missing_events()["payment"] == {"opened": 1, "resolved": 0}
    assert missing("payment").get().document_number == "INV-77"
    client.force_login(executive)
    assert client.get("/api/v1/kpis/").json()["revenue_at_risk"]["amount"] == "450.00"

    Payment.objects.create(invoice=invoice, customer=customer, status=Payment.Status.FAILED, amount=Decimal("450"), currency="USD", occurred_at=now)
    assert detect_missing_events()["payment"] == {"opened": 0, "resolved": 1}
    assert client.get("/api/v1/kpis/").json()["revenue_at_risk"]["amount"] == "0.00"
