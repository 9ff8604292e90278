"""The deal page (/deals/<deal id>/) and the deal id on flows: ids with slashes and odd characters,
the lifecycle from what happened, money by docs/MONEY.md, search, the queue's deal filter, roles,
and the backfill of existing flows."""

from __future__ import annotations

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from sync.models import Customer, FlowRun, FlowStep, Invoice, LegalEntity, Order, Payment, Subscription
from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory

pytestmark = pytest.mark.django_db
ODD = "SF/ORD 7#?%ü"  # a CRM key with a slash, spaces and characters a URL must escape


def _deal(number: str = ODD, *, paid: Decimal = Decimal("1500.00"), cancelled: bool = False) -> dict:
    """A deal as the engine leaves it: an activated order with its subscription, a posted first
    invoice, a payment, and (optionally) a completed cancellation; each flow carries the deal id."""
    now = timezone.now()
    entity = LegalEntity.objects.get_or_create(code="DE01", defaults={"name": "Acme GmbH", "base_currency": "EUR"})[0]
    customer = Customer.objects.create(name="Initech GmbH", currency="EUR", legal_entity=entity)
    order = Order.objects.create(
        number=number, customer=customer, legal_entity=entity, currency="EUR", status="activated", closed_won_at=now - timedelta(days=3)
    )
    lines = [
        {"sku": "PLAT-SEAT", "quantity": 10, "unit_price": "100.00", "billing": "recurring", "interval": "month"},
        {"sku": "ONBOARD-FEE", "quantity": 1, "unit_price": "500.00", "billing": "one_time"},
    ]
    subscription = Subscription.objects.create(
        customer=customer, order=order, currency="EUR", arr=Decimal("12000.00"), status="canceled" if cancelled else "active", billing_starts_at=now
    )
    order_run = FlowRunFactory(
        flow_type="order_activation",
        document_number=number,
        deal_id=number,
        currency="EUR",
        amount=Decimal("12500.00"),
        business_started_at=now - timedelta(days=3),
        business_completed_at=now - timedelta(days=3) + timedelta(minutes=5),
        context={"event": {"type": "order.closed_won.v1", "data": {"order_number": number, "lines": lines}}, "steps": {}},
    )
    for seq, name in enumerate(["validate", "erp_customer", "billing_customer", "erp_sales_order", "billing_subscription", "crm_status"], start=1):
        FlowStepFactory(
            flow_run=order_run, seq=seq, name=name, status="succeeded", started_at=now - timedelta(days=3), finished_at=now - timedelta(days=3, minutes=-seq)
        )
    invoice = Invoice.objects.create(
        number=f"INV-{abs(hash(number)) % 10000}",
        customer=customer,
        subscription=subscription,
        legal_entity=entity,
        currency="EUR",
        subtotal=Decimal("1500.00"),
        total=Decimal("1500.00"),
        finalized_at=now - timedelta(days=2),
        posted_at=now - timedelta(days=2) + timedelta(minutes=1),
    )
    invoice_run = FlowRunFactory(
        flow_type="invoice_posting",
        document_number=invoice.number,
        deal_id=number,
        currency="EUR",
        amount=invoice.total,
        business_started_at=now - timedelta(days=2),
    )
    Payment.objects.create(invoice=invoice, customer=customer, status="received", amount=paid, currency="EUR", occurred_at=now - timedelta(days=1))
    from sync.canonical.store import refresh_payment_state

    refresh_payment_state(invoice.pk)
    payment_run = FlowRunFactory(
        flow_type="payment_status",
        document_number=invoice.number,
        deal_id=number,
        currency="EUR",
        amount=paid,
        business_started_at=now - timedelta(days=1),
        context={"event": {"type": "payment.received.v1", "data": {"invoice_number": invoice.number, "amount": str(paid)}}},
    )
    runs = {"order": order_run, "invoice_run": invoice_run, "payment": payment_run}
    if cancelled:
        runs["cancellation"] = FlowRunFactory(
            flow_type="cancellation",
            document_number=number,
            deal_id=number,
            currency="EUR",
            amount=Decimal("12000.00"),
            business_started_at=now - timedelta(hours=2),
            business_completed_at=now - timedelta(hours=1),
            context={"event": {"type": "subscription.cancelled.v1", "data": {"order_number": number, "reason": "budget"}}},
        )
    return {"order": order, "invoice": invoice, "subscription": subscription, **runs}


def test_a_deal_id_with_slashes_and_odd_characters_has_its_page_and_every_trace_links_to_it(client, finance):
    deal = _deal()
    url = reverse("monitoring:deal_detail", args=[ODD])
    assert url.startswith("/deals/SF/ORD%207%23%3F%25")  # the slash stays a path separator, the rest is escaped
    client.force_login(finance)
    html = client.get(url).content.decode()
    assert "data-deal-id>SF/ORD 7#?%ü<" in html
    for run in (deal["order"], deal["invoice_run"], deal["payment"]):
        assert reverse("monitoring:trace_detail", args=[run.pk]) in html  # the whole story links each flow's trace
        trace = client.get(reverse("monitoring:trace_detail", args=[run.pk])).content.decode()
        assert f'href="{url}"' in trace  # …and every trace names its deal
    # in time order: closed-won order, then its invoice, then the payment
    assert html.index(f'data-document="{deal["order"].document_number}"') < html.index(f'data-flow="invoice_posting" data-document="{deal["invoice"].number}"')


def test_the_lifecycle_is_what_happened_a_posted_paid_invoice_is_done_and_a_later_cancellation_shows(client, executive):
    _deal("ORD-PAID")
    _deal("ORD-GONE", cancelled=True)
    client.force_login(executive)
    paid = client.get("/deals/ORD-PAID/").content.decode()
    assert 'data-stage="first_invoice" data-state="done"' in paid and 'data-stage="payment" data-state="done"' in paid
    assert "data-deal-stage>Live and paid<" in paid
    gone = client.get("/deals/ORD-GONE/").content.decode()
    assert 'data-stage="cancellation" data-state="done"' in gone and "data-deal-stage>Cancelled<" in gone
    assert 'data-figure="deal-arr">EUR 0.00<' in gone  # a completed cancellation ends the ARR


def test_the_deal_money_follows_the_money_definitions(client, executive):
    _deal("ORD-PART", paid=Decimal("400.00"))
    _deal("ORD-OVER", paid=Decimal("1550.00"))
    client.force_login(executive)
    part = client.get("/deals/ORD-PART/").content.decode()
    assert 'data-figure="deal-contract-value">EUR 12,500.00<' in part  # 10 × 100 × 12 recurring + 500 one-time
    assert 'data-figure="deal-arr">EUR 12,000.00<' in part
    assert 'data-figure="deal-invoiced">EUR 1,500.00<' in part
    assert 'data-figure="deal-paid">EUR 400.00<' in part and 'data-figure="deal-remaining">EUR 1,100.00<' in part
    assert 'data-stage="payment" data-state="now"' in part and "partially paid · 1,100.00 EUR remaining" in part
    over = client.get("/deals/ORD-OVER/").content.decode()
    assert 'data-figure="deal-remaining">EUR 0.00<' in over and 'data-figure="deal-credit-balance">EUR 50.00<' in over


def test_deals_are_searchable_in_traces_and_the_exception_queue_filters_by_deal(client, itops):
    deal = _deal("ORD-FIND")
    other = _deal("ORD-OTHER")
    failed = FlowRunFactory(flow_type="amendment", document_number="AMD-9", deal_id="ORD-FIND", status="failed")
    mine = SyncExceptionFactory(step=FlowStepFactory(flow_run=failed, name="erp_change"))
    theirs = SyncExceptionFactory(step=FlowStepFactory(flow_run=other["order"], seq=9, name="erp_sales_order"))
    client.force_login(itops)
    found = client.get("/traces/", {"q": "ORD-FIND"}).content.decode()
    for run in (deal["order"], deal["invoice_run"], deal["payment"], failed):  # the invoice and payment have other document numbers
        assert reverse("monitoring:trace_detail", args=[run.pk]) in found
    assert reverse("monitoring:trace_detail", args=[other["invoice_run"].pk]) not in found
    queue = client.get("/exceptions/", {"deal": "ORD-FIND"}).content.decode()
    assert f'id="exc-{mine.pk}"' in queue and f'id="exc-{theirs.pk}"' not in queue
    assert 'data-deal="ORD-FIND"' in queue
    api = client.get("/api/v1/exceptions/", {"deal": "ORD-FIND"}).json()
    assert [e["id"] for e in api["results"]] == [mine.pk] and api["results"][0]["deal"] == "ORD-FIND"
    page = client.get("/deals/ORD-FIND/").content.decode()
    assert f'href="/exceptions/{mine.pk}/"' in page and "/exceptions/?deal=ORD-FIND" in page


def test_who_sees_orders_sees_deals_and_an_unknown_deal_says_what_to_do(client, executive, make_user):
    _deal("ORD-ROLE")
    nobody = make_user("nobody")
    client.force_login(nobody)
    assert client.get("/deals/ORD-ROLE/").status_code == 403
    client.force_login(executive)
    assert client.get("/orders/").status_code == 200 and client.get("/deals/ORD-ROLE/").status_code == 200
    missing = client.get("/deals/NO-SUCH/")
    assert missing.status_code == 404 and "No deal “NO-SUCH” is known to the hub" in missing.content.decode()


def test_the_migration_backfills_the_deal_of_existing_flows():
    deal = _deal("ORD-OLD")
    naked_invoice = FlowRunFactory(flow_type="invoice_posting", document_number=deal["invoice"].number + "-B", context={"event": {"data": {}}})
    amendment = FlowRunFactory(flow_type="amendment", document_number="AMD-OLD", context={"event": {"data": {"order_number": "ORD-OLD"}}})
    sync_run = FlowRunFactory(flow_type="customer_sync", document_number="ACC-1", context={"event": {"data": {}}})
    FlowRun.objects.update(deal_id="")
    migration = importlib.import_module("sync.migrations.0014_deals_flowrun_deal_id")
    with connection.cursor() as cursor:
        for sql in migration.BACKFILL:
            cursor.execute(sql)
    deals = dict(FlowRun.objects.values_list("pk", "deal_id"))
    assert deals[deal["order"].pk] == "ORD-OLD"  # named in its event
    assert deals[deal["invoice_run"].pk] == "ORD-OLD"  # its invoice bills the order's subscription
    assert deals[deal["payment"].pk] == "ORD-OLD"  # through its invoice
    assert deals[amendment.pk] == "ORD-OLD"
    assert deals[naked_invoice.pk] == "" and deals[sync_run.pk] == ""  # not derivable: left blank, never guessed


def test_a_payment_event_finds_its_deal_through_the_invoice_subscription_and_order(settings):
    from sync.engine.runner import flow_start
    from sync.flows.registry import flow_for_event

    deal = _deal("ORD-PAY")
    envelope = {
        "type": "payment.received.v1",
        "data": {
            "payment_id": "p-2",
            "invoice_number": deal["invoice"].number,
            "amount": "10.00",
            "currency": "EUR",
            "received_at": timezone.now().isoformat(),
        },
    }
    run, created = flow_start(flow=flow_for_event("payment.received.v1"), envelope=envelope)
    assert created and run.deal_id == "ORD-PAY"
    early = {"type": "payment.received.v1", "data": {**envelope["data"], "payment_id": "p-3", "invoice_number": "INV-NOT-YET"}}
    assert flow_start(flow=flow_for_event("payment.received.v1"), envelope=early)[0].deal_id == ""  # known later, when a step links it
    assert FlowStep.objects.filter(flow_run=run).count() == 3
