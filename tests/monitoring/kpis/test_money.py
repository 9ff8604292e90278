"""The money figures as docs/MONEY.md defines them (issue 11): revenue at risk and records out of
date, unbilled ARR, payment state, month-end close readiness, the reporting rate of the day.
Each expected figure is worked out by hand in the test."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from monitoring.kpis import money
from monitoring.kpis.window import Window
from monitoring.models import SlaHoliday
from sync.canonical.store import invoice_upsert, ref_set, refresh_payment_state
from sync.engine.exceptions import open_exception
from sync.models import CreditMemo, CurrencyRate, Customer, FlowRun, FlowType, Invoice, LegalEntity, Order, Payment, Subscription
from tests.factories import FlowRunFactory, FlowStepFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # a Wednesday: the second business day of December


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def rates(db):
    CurrencyRate.objects.create(currency="EUR", rate_to_reporting=Decimal("1.08"), valid_from=date(2026, 1, 1))
    CurrencyRate.objects.create(currency="EUR", rate_to_reporting=Decimal("1.10"), valid_from=date(2026, 12, 1))  # today's rate
    CurrencyRate.objects.create(currency="EUR", rate_to_reporting=Decimal("9.99"), valid_from=date(2026, 12, 3))  # not valid yet


def window() -> Window:
    return Window.last_days(30, as_of=NOW)


def failed_flow(flow_type, amount, currency="USD", step="erp_invoice", **kw) -> FlowRun:
    run = FlowRunFactory(flow_type=flow_type, status=FlowRun.Status.FAILED, amount=Decimal(amount), currency=currency, amount_reporting=Decimal(0), **kw)
    s = FlowStepFactory(flow_run=run, name=step, system="netsuite")
    open_exception(system="netsuite", error_class="validation", message=f"{step} refused", flow_run=run, step=s)
    return run


def test_a_completed_flow_whose_only_failure_is_the_crm_write_back_carries_no_revenue_at_risk(clock, rates):
    # issue 11: one completed cancellation group showed its full annual value (USD 716k) at risk
    cancellation = FlowRunFactory(flow_type=FlowType.CANCELLATION, status=FlowRun.Status.COMPLETED, amount=Decimal("716000.00"), finished_at=NOW)
    writeback = FlowStepFactory(flow_run=cancellation, name="crm_status", system="hub", status="succeeded")
    exc = open_exception(system="salesforce", error_class="validation", message="Status write-back refused: blocked", flow_run=cancellation, step=writeback)

    risk = money.revenue_at_risk(window())

    assert exc.revenue_at_risk == 0
    assert risk["amount"] == "0.00" and risk["flows"] == 0
    assert risk["records_out_of_date"] == 1


def test_a_failed_downgrade_puts_the_over_billing_at_risk_never_a_negative_amount(clock, rates):
    failed_flow(FlowType.AMENDMENT, "-2700.00", currency="EUR", step="erp_change")  # 5 seats × 45.00 × 12 less
    failed_flow(FlowType.AMENDMENT, "1200.00", step="erp_change")

    # |−2700 EUR| × 1.10 (today's rate, not the 9.99 of tomorrow) + 1200 USD
    assert money.revenue_at_risk(window())["amount"] == "4170.00"


def test_an_unposted_invoice_counts_its_amount_remaining_and_a_failed_payment_notice_nothing(clock, rates):
    customer = Customer.objects.create(name="Hooli", currency="EUR")
    invoice_upsert(data={"invoice_number": "INV-9", "currency": "EUR", "total": "150.00", "finalized_at": NOW.isoformat()}, customer=customer, order=None)
    Payment.objects.create(
        invoice=Invoice.objects.get(number="INV-9"), customer=customer, status="received", amount=Decimal("100.00"), currency="EUR", occurred_at=NOW
    )
    refresh_payment_state(Invoice.objects.get(number="INV-9").pk)
    failed_flow(FlowType.INVOICE_POSTING, "150.00", currency="EUR", document_number="INV-9")
    notice = failed_flow(FlowType.PAYMENT_STATUS, "150.00", currency="EUR", step="map_payment", document_number="INV-9")
    FlowRun.objects.filter(pk=notice.pk).update(context={"event": {"type": "payment.failed.v1"}})

    # 50.00 EUR still owed × 1.10; the failed-payment notice moved no money
    assert money.revenue_at_risk(window())["amount"] == "55.00"


def test_payment_state_partial_exact_over_and_credited(db, clock):
    customer = Customer.objects.create(name="Initech", currency="EUR")
    inv = invoice_upsert(data={"invoice_number": "INV-P", "currency": "EUR", "total": "150.00", "finalized_at": NOW.isoformat()}, customer=customer, order=None)
    assert (inv.status, inv.amount_remaining) == ("open", Decimal("150.00"))

    def pay(amount: str) -> Invoice:
        Payment.objects.create(invoice=inv, customer=customer, status="received", amount=Decimal(amount), currency="EUR", occurred_at=NOW)
        return refresh_payment_state(inv.pk)

    # issue 11: 1.00 of 150.00 EUR marked the invoice paid
    partly = pay("1.00")
    assert (partly.status, partly.amount_paid, partly.amount_remaining) == ("partially_paid", Decimal("1.00"), Decimal("149.00"))
    paid = pay("149.00")
    assert (paid.status, paid.amount_remaining, paid.credit_balance) == ("paid", 0, 0) and paid.paid_at == NOW
    over = pay("20.00")
    assert (over.status, over.amount_remaining, over.credit_balance) == ("overpaid", 0, Decimal("20.00"))
    Payment.objects.create(invoice=inv, customer=customer, status="failed", amount=Decimal("500.00"), currency="EUR", occurred_at=NOW)
    assert refresh_payment_state(inv.pk).amount_paid == Decimal("170.00")  # a failed attempt is no payment

    credited = invoice_upsert(
        data={"invoice_number": "INV-C", "currency": "EUR", "total": "100.00", "finalized_at": NOW.isoformat()}, customer=customer, order=None
    )
    CreditMemo.objects.create(number="CN-1", invoice=credited, customer=customer, amount=Decimal("30.00"), currency="EUR", issued_at=NOW)
    Payment.objects.create(invoice=credited, customer=customer, status="received", amount=Decimal("70.00"), currency="EUR", occurred_at=NOW)
    assert refresh_payment_state(credited.pk).status == "paid"  # due = 100 − 30 credited

    states = money.payment_states(window())
    # no EUR rate in this test: the EUR credit balance is left out of the total, and said to be
    assert states["overpaid"] == {"invoices": 1, "remaining": "0.00", "credit_balance": "0.00"}
    assert states["paid"]["invoices"] == 1 and states["receivable"] == "0.00"
    assert money.unconverted(window()) == [{"currency": "EUR", "documents": 1}]


def test_a_currency_without_a_rate_is_left_out_of_every_total_and_listed_never_counted_1_to_1(clock, rates, client, executive):
    """AUD 10,000 at risk with no AUD rate was counted as USD 10,000 (a wrong figure). Now the
    totals leave it out, the API lists AUD under `unconverted`, and the Overview says so; once the
    rate is entered the same flow counts at it."""
    failed_flow(FlowType.ORDER_ACTIVATION, "10000.00", currency="AUD", step="erp_sales_order")
    failed_flow(FlowType.ORDER_ACTIVATION, "1000.00", currency="EUR", step="erp_sales_order")

    risk = money.revenue_at_risk(window())
    assert risk["amount"] == "1100.00"  # EUR 1,000 × 1.10; the AUD order is not in it
    assert money.unconverted(window()) == [{"currency": "AUD", "documents": 2}]  # its flow and its open exception

    client.force_login(executive)
    api = client.get("/api/v1/kpis/").json()
    assert api["revenue_at_risk"]["amount"] == "1100.00" and api["unconverted"] == [{"currency": "AUD", "documents": 2}]
    page = client.get("/").content.decode()
    assert "data-unconverted" in page and "2 documents in AUD" in page and "no USD rate" in page

    CurrencyRate.objects.create(currency="AUD", rate_to_reporting=Decimal("0.65"), valid_from=date(2026, 1, 1))
    assert money.revenue_at_risk(window())["amount"] == "7600.00"  # + AUD 10,000 × 0.65
    assert money.unconverted(window()) == []
    assert "data-unconverted" not in client.get("/").content.decode()


def test_unbilled_arr_counts_active_subscriptions_past_their_first_invoice_date_with_no_invoice_linked(db, clock, rates):
    entity = LegalEntity.objects.create(code="DE01", name="GmbH", base_currency="EUR")
    customer = Customer.objects.create(name="Umbrella", currency="EUR", legal_entity=entity)

    def subscription(number: str, started: datetime, arr: str) -> Subscription:
        order = Order.objects.create(number=number, customer=customer, currency="EUR")
        sub = Subscription.objects.create(customer=customer, order=order, currency="EUR", arr=Decimal(arr), billing_starts_at=started)
        ref_set(system="stripe", object_type="subscription", external_id=f"sub_{number}", canonical_type="subscription", canonical_id=sub.pk)
        return sub

    invoiced = subscription("ORD-1", NOW - timedelta(days=3), "12000")
    subscription("ORD-2", NOW - timedelta(days=3), "6000")  # never invoiced: unbilled
    subscription("ORD-3", NOW - timedelta(hours=20), "24000")  # within the day of grace
    cancelled = subscription("ORD-4", NOW - timedelta(days=3), "1000")
    Subscription.objects.filter(pk=cancelled.pk).update(status="canceled")
    # the live invoice names its billing subscription (issue 11: it was never linked, so every
    # live subscription counted as never invoiced and unbilled ARR grew without bound)
    inv = invoice_upsert(
        data={"invoice_number": "INV-1", "currency": "EUR", "total": "1000.00", "finalized_at": NOW.isoformat(), "billing_subscription_id": "sub_ORD-1"},
        customer=customer,
        order=None,
        subscription=None,
    )
    assert inv.subscription is None  # the flow passes it: see invoice_posting.map_invoice
    from sync.canonical.store import subscription_for_invoice

    assert subscription_for_invoice(billing_system="stripe", data={"billing_subscription_id": "sub_ORD-1"}, order=None) == invoiced
    Invoice.objects.filter(pk=inv.pk).update(subscription=invoiced)

    assert money.unbilled_arr(window()) == {"currency": "USD", "amount": "6600.00", "subscriptions": 1}  # 6000 EUR × 1.10
    assert money.arr(window())["amount"] == "46200.00"  # (12000 + 6000 + 24000) × 1.10


@pytest.mark.parametrize(
    "today, holidays, closing",
    [
        (date(2026, 12, 2), [], date(2026, 11, 1)),  # issue 11: on Dec 2 the close showed December
        (date(2026, 12, 7), [], date(2026, 11, 1)),  # Tue 1 … Mon 7: the fifth business day
        (date(2026, 12, 8), [], date(2026, 12, 1)),
        (date(2026, 12, 8), [date(2026, 12, 1)], date(2026, 11, 1)),  # a holiday moves the window
        (date(2026, 11, 30), [], date(2026, 11, 1)),
        (date(2027, 1, 1), [date(2027, 1, 1)], date(2026, 12, 1)),
    ],
)
def test_the_closing_month_is_the_previous_one_during_the_first_five_business_days(today, holidays, closing):
    assert money.closing_month(today, set(holidays)) == closing


def test_close_readiness_on_december_2_counts_novembers_unposted_invoices_unapplied_payments_and_breaks(clock, rates):
    nov = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    for i in range(9):  # the nine November invoices of issue 11 (USD 25.5k in all)
        FlowRunFactory(flow_type=FlowType.INVOICE_POSTING, status="failed", business_started_at=nov, document_number=f"INV-N{i}", amount=Decimal("2833.33"))
    FlowRunFactory(flow_type=FlowType.INVOICE_POSTING, status="completed", business_started_at=nov, business_completed_at=nov)  # posted
    FlowRunFactory(flow_type=FlowType.INVOICE_POSTING, status="failed", business_started_at=NOW)  # December's: not this close
    received = FlowRunFactory(flow_type=FlowType.PAYMENT_STATUS, status="waiting", business_started_at=nov, amount=Decimal("100.00"), currency="EUR")
    FlowRun.objects.filter(pk=received.pk).update(context={"event": {"type": "payment.received.v1"}})
    notice = FlowRunFactory(flow_type=FlowType.PAYMENT_STATUS, status="failed", business_started_at=nov)
    FlowRun.objects.filter(pk=notice.pk).update(context={"event": {"type": "payment.failed.v1"}})  # no payment to apply
    brk = open_exception(
        system="netsuite",
        error_class="reconciliation",
        message="amount mismatch",
        document_number="INV-R",
        amount=Decimal("50"),
        currency="USD",
        fingerprint_extra="R",
    )
    old = open_exception(
        system="netsuite",
        error_class="reconciliation",
        message="amount mismatch",
        document_number="INV-S",
        amount=Decimal("70"),
        currency="USD",
        fingerprint_extra="S",
    )
    from sync.models import SyncException

    SyncException.objects.filter(pk=brk.pk).update(first_seen=nov)
    SyncException.objects.filter(pk=old.pk).update(first_seen=datetime(2026, 10, 3, tzinfo=UTC))  # October's

    close = money.close_readiness(window())

    assert close["label"] == "November 2026" and close["in_close_window"] is True
    assert (close["unposted"], close["unposted_amount"]) == (9, "25499.97")
    assert (close["unapplied_payments"], close["unapplied_amount"]) == (1, "110.00")  # 100 EUR × 1.10
    assert (close["open_breaks"], close["ready"]) == (1, False)


def test_a_holiday_keeps_the_close_window_open(clock, rates):
    SlaHoliday.objects.create(date=date(2026, 12, 1), name="test")
    assert money.close_readiness(window())["label"] == "November 2026"
