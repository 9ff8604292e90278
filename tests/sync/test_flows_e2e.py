"""End to end: real worker, real Redis, real PostgreSQL, the three sandboxes as servers."""

from __future__ import annotations

import signal
import uuid
from decimal import Decimal

import psutil
import pytest

from sync.engine.inbox import accept_canonical
from sync.models import ExternalRef, FlowRun, FlowStep, SyncException

from .conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def order_event(number: str, *, event_id: str | None = None, sku: str = "PLAT-SEAT", entity: str = "US01", currency: str = "USD") -> dict:
    return {
        "id": event_id or f"evt-{uuid.uuid4().hex[:12]}",
        "type": "order.closed_won.v1",
        "source": "crm-relay",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {
            "order_number": number,
            "account": {"external_id": f"001{number}", "name": f"Customer of {number}", "email": "ap@example.com"},
            "currency": currency,
            "legal_entity": entity,
            "closed_won_at": "2026-11-23T10:00:00Z",
            "effective_date": "2026-11-23",
            "lines": [
                {"sku": sku, "description": "Platform seats", "quantity": "25", "unit_price": "40.00", "billing": "recurring", "interval": "month"},
                {"sku": "ONBOARD-FEE", "description": "Onboarding", "quantity": "1", "unit_price": "1500.00", "billing": "one_time"},
            ],
        },
    }


def _run(number: str) -> FlowRun | None:
    return FlowRun.objects.filter(flow_type="order_activation", document_number=number).first()


def _finished(number: str):
    run = _run(number)
    return run if run and run.status in ("completed", "failed") else None


def ns_sales_orders(external_id: str) -> int:
    """How many times the ERP sandbox *created* a sales order with this external id."""
    from sandboxes.netsuite.models import ExternalIdLedger, Record

    ledger = ExternalIdLedger.objects.filter(record_type="salesOrder", external_id=external_id).first()
    assert Record.objects.filter(record_type="salesOrder", external_id=external_id).count() == (1 if ledger else 0)
    return ledger.creates if ledger else 0


def stripe_subscriptions(order_number: str) -> int:
    from sandboxes.stripe.simulate import count_objects

    return count_objects("subscription", order_number=order_number)


def test_a_closed_won_order_reaches_the_erp_and_billing_with_its_cycle_time(stack, reference_data):
    stack.start_worker()
    accept_canonical([order_event("ORD-E2E-1")])
    run = wait_for(lambda: _finished("ORD-E2E-1"), message="order activation did not finish")
    assert run.status == "completed", list(run.steps.values("name", "status", "error_message"))
    assert ns_sales_orders("SO-ORD-E2E-1") == 1
    assert stripe_subscriptions("ORD-E2E-1") == 1
    assert run.activated_at is not None and run.activated_at >= run.closed_won_at
    assert run.business_duration_seconds == (run.activated_at - run.closed_won_at).total_seconds()
    assert ExternalRef.objects.filter(system="netsuite", object_type="salesOrder").count() == 1
    assert set(run.steps.values_list("status", flat=True)) == {"succeeded"}


def test_the_same_order_delivered_five_times_creates_one_sales_order_and_one_subscription(stack, reference_data):
    stack.start_worker()
    for i in range(5):
        accept_canonical([order_event("ORD-E2E-5", event_id=f"dup-{i}")])
    accept_canonical([order_event("ORD-E2E-5", event_id="dup-0")])  # the very same event id again
    wait_for(lambda: _finished("ORD-E2E-5"), message="order activation did not finish")
    assert FlowRun.objects.filter(document_number="ORD-E2E-5").count() == 1
    assert ns_sales_orders("SO-ORD-E2E-5") == 1
    assert stripe_subscriptions("ORD-E2E-5") == 1


def test_a_worker_killed_in_the_middle_of_the_erp_step_duplicates_nothing(stack, reference_data):
    stack.sandboxes["netsuite"].faults(latency_ms=2500)
    worker = stack.start_worker(Q2C_FLOW_LEASE_SECONDS="4")
    accept_canonical([order_event("ORD-E2E-K")])
    wait_for(
        lambda: FlowStep.objects.filter(flow_run__document_number="ORD-E2E-K", name="erp_sales_order", status="running").exists(),
        message="ERP step never started",
    )
    # SIGKILL the pool child running the step, and then the whole worker: nothing is acked
    for child in psutil.Process(worker.proc.pid).children(recursive=True):
        child.send_signal(signal.SIGKILL)
    worker.kill(signal.SIGKILL)
    stack.sandboxes["netsuite"].faults()
    stack.start_worker(Q2C_FLOW_LEASE_SECONDS="4")
    from sync.tasks import sweep

    def done():
        sweep.run(inbox_grace_seconds=0)  # what beat does every 15 s
        return _finished("ORD-E2E-K")

    run = wait_for(done, timeout=90, interval=1, message="flow did not recover after the kill")
    assert run.status == "completed"
    assert ns_sales_orders("SO-ORD-E2E-K") == 1
    assert stripe_subscriptions("ORD-E2E-K") == 1


def test_an_unknown_sku_fails_for_good_with_a_mapping_exception_in_business_terms(stack, reference_data):
    stack.start_worker()
    accept_canonical([order_event("ORD-E2E-SKU", sku="SKU-42")])
    run = wait_for(lambda: _finished("ORD-E2E-SKU"))
    assert run.status == "failed" and run.had_exception
    exc = SyncException.objects.get(flow_run=run)
    assert exc.error_class == "mapping" and "SKU-42" in exc.message
    assert exc.document_number == "ORD-E2E-SKU" and exc.account_name == "Customer of ORD-E2E-SKU"
    # issue 11 (by design): an order at risk counts its first-year value — 25 × 40.00 × 12 recurring + 1500.00 one-time
    assert exc.revenue_at_risk == Decimal("13500.00") and exc.currency == "USD"
    assert stripe_subscriptions("ORD-E2E-SKU") == 0  # billing never ran: the ERP step comes first


def test_a_deal_closed_in_salesforce_is_activated_everywhere_and_salesforce_says_so(stack, reference_data, live_server):
    """Salesforce sandbox → relay (HMAC) → webhook → inbox → worker normalises → flow → outbox → Salesforce."""
    from sandboxes.salesforce import simulate as sf
    from sync.connectors.registry import crm
    from sync.tasks import publish_outbox

    stack.start_worker()
    deal = sf.close_won_deal(account_name="Initech", lines=[{"sku": "PLAT-SEAT", "quantity": 10, "unit_price": "45.00"}])
    wait_for(
        lambda: (
            sf.relay_pending_events(url=f"{live_server.url}/api/v1/webhooks/salesforce/")
            or FlowRun.objects.filter(document_number=deal["order_number"]).exists()
        ),
        message="relay never reached the hub",
    )
    run = wait_for(lambda: _finished(deal["order_number"]), message="flow did not finish")
    assert run.status == "completed", list(run.steps.values("name", "status", "error_message"))
    assert run.account_name == "Initech"

    def activated():
        publish_outbox.run()  # the status worker's job; run here so the test does not wait for beat
        order, _ = crm().get_order(deal["order_id"])
        return order if order and order.get("Status") == "Activated" else None

    wait_for(activated, message="Salesforce order never became Activated")
    [row] = crm().query(f"SELECT Id, Q2C_Status__c, ERP_Order_Id__c, Billing_Subscription_Id__c FROM Order WHERE Id = '{deal['order_id']}'")
    assert row["Q2C_Status__c"] == "Activated"
    assert row["ERP_Order_Id__c"] == run.context["steps"]["erp_sales_order"]["sales_order_id"]
    assert row["Billing_Subscription_Id__c"] == run.context["steps"]["billing_subscription"]["subscription_id"]


def _activate(stack, number: str) -> FlowRun:
    accept_canonical([order_event(number)])
    run = wait_for(lambda: _finished(number), message=f"{number} did not activate")
    assert run.status == "completed", list(run.steps.values("name", "status", "error_message"))
    return run


def invoice_event(number: str, order: FlowRun, total: str = "1000.00") -> dict:
    return {
        "id": f"evt-{number}",
        "type": "invoice.finalized.v1",
        "source": "billing-relay",
        "occurred_at": "2026-11-23T11:00:00Z",
        "data": {
            "invoice_number": number,
            "order_number": order.document_number,
            "currency": "USD",
            "subtotal": total,
            "tax": "0.00",
            "total": total,
            "billing_customer_id": order.context["steps"]["billing_customer"]["billing_customer_id"],
            "finalized_at": "2026-11-23T11:00:00Z",
            "due_date": "2026-12-23",
            "lines": [{"sku": "PLAT-SEAT", "description": "Platform seats", "quantity": "25", "unit_amount": "40.00", "amount": total}],
        },
    }


def test_invoices_during_an_erp_outage_retry_then_queue_as_unavailable_and_post_once_after_it(stack, reference_data):
    from monitoring.exceptions.services import exception_retry
    from sandboxes.netsuite.models import ExternalIdLedger

    stack.start_worker(Q2C_MAX_ATTEMPTS_NETSUITE="3")
    order = _activate(stack, "ORD-E2E-INV")
    stack.sandboxes["netsuite"].faults(outage=True)
    numbers = [f"INV-OUT-{i}" for i in range(3)]
    accept_canonical([invoice_event(n, order) for n in numbers])

    def all_queued():
        excs = SyncException.objects.filter(document_number__in=numbers, status="open")
        return list(excs) if excs.count() == len(numbers) else None

    excs = wait_for(all_queued, timeout=90, message="invoices did not become exceptions")
    assert {e.error_class for e in excs} == {"unavailable"} and {e.system for e in excs} == {"netsuite"}
    assert all(e.step.attempts == 3 for e in excs)  # retried, then dead-lettered
    assert FlowRun.objects.filter(document_number__in=numbers, posted_at__isnull=False).count() == 0

    stack.sandboxes["netsuite"].faults()  # the outage ends
    for exc in excs:
        exception_retry(exception_id=exc.pk, user=None)
    wait_for(
        lambda: FlowRun.objects.filter(document_number__in=numbers, status="completed").count() == len(numbers), message="invoices not posted after the outage"
    )
    for n in numbers:
        assert ExternalIdLedger.objects.get(record_type="invoice", external_id=f"INV-{n}").creates == 1
    assert set(SyncException.objects.filter(document_number__in=numbers).values_list("status", flat=True)) == {"resolved"}
    lags = FlowRun.objects.filter(document_number__in=numbers).values_list("posted_at", "finalized_at")
    assert all(posted > finalized for posted, finalized in lags)


def test_cancelling_an_amendment_whose_erp_step_failed_for_good_restores_the_subscription(stack, reference_data):
    from sync.connectors.registry import billing
    from sync.engine.runner import flow_cancel

    stack.start_worker()
    order = _activate(stack, "ORD-E2E-AMD")
    sub_id = order.context["steps"]["billing_subscription"]["subscription_id"]
    before = {i["sku"]: i["quantity"] for i in billing().get_subscription(subscription_id=sub_id)["items"]}
    stack.sandboxes["netsuite"].faults(fail_records=["CO-AMD-E2E-1"])  # the ERP refuses the change order
    accept_canonical(
        [
            {
                "id": "evt-amd-1",
                "type": "subscription.amended.v1",
                "source": "crm-relay",
                "occurred_at": "2026-11-23T12:00:00Z",
                "data": {
                    "amendment_id": "AMD-E2E-1",
                    "order_number": "ORD-E2E-AMD",
                    "currency": "USD",
                    "requested_at": "2026-11-23T12:00:00Z",
                    "arr_delta": "2400.00",
                    "changes": [{"sku": "PLAT-SEAT", "quantity": "30", "unit_price": "40.00"}],
                },
            }
        ]
    )
    run = wait_for(lambda: FlowRun.objects.filter(document_number="AMD-E2E-1", status__in=["failed", "completed"]).first(), message="amendment did not finish")
    assert run.status == "failed"
    assert run.steps.get(name="billing_change").status == "succeeded", list(run.steps.values("name", "status", "error_message"))
    changed = {i["sku"]: i["quantity"] for i in billing().get_subscription(subscription_id=sub_id)["items"]}
    assert changed["PLAT-SEAT"] != before["PLAT-SEAT"]

    cancelled = flow_cancel(flow_run_id=run.pk, reason="ERP refuses the change order")
    assert cancelled.status == "cancelled"
    after = {i["sku"]: i["quantity"] for i in billing().get_subscription(subscription_id=sub_id)["items"]}
    assert after == before
    assert run.steps.get(name="billing_change").status == "compensated"
    assert SyncException.objects.get(flow_run=run).status == "resolved"


def test_an_amendment_that_arrives_before_its_order_parks_and_resumes_when_the_order_completes(stack, reference_data):
    stack.start_worker()
    accept_canonical(
        [
            {
                "id": "evt-amd-early",
                "type": "subscription.amended.v1",
                "source": "crm-relay",
                "occurred_at": "2026-11-23T12:00:00Z",
                "data": {
                    "amendment_id": "AMD-EARLY",
                    "order_number": "ORD-E2E-LATE",
                    "currency": "USD",
                    "requested_at": "2026-11-23T12:00:00Z",
                    "changes": [{"sku": "PLAT-SEAT", "quantity": "26", "unit_price": "40.00"}],
                },
            }
        ]
    )
    parked = wait_for(lambda: FlowRun.objects.filter(document_number="AMD-EARLY", status="parked").first(), message="amendment did not park")
    assert parked.waits_for == "order:ORD-E2E-LATE" and "ORD-E2E-LATE" in parked.parked_reason
    _activate(stack, "ORD-E2E-LATE")
    done = wait_for(lambda: FlowRun.objects.filter(document_number="AMD-EARLY", status__in=["completed", "failed"]).first(), message="amendment did not resume")
    assert done.status == "completed", list(done.steps.values("name", "status", "error_message"))
