"""End to end: real worker, real Redis, real PostgreSQL, the three sandboxes as servers."""

from __future__ import annotations

import os
from decimal import Decimal
import signal
import uuid

import psutil
import pytest
from django.core.management import call_command

from sync.engine.inbox import accept_canonical
from sync.models import ExternalRef, FlowRun, FlowStep, SyncException

from .conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def order_event(number: str, *, event_id: str | None = None, sku: str = "PLAT-SEAT", entity: str = "US01", currency: str = "USD") -> dict:
    return {
        "id": event_id or f"evt-{uuid.uuid4().hex[:12]}", "type": "order.closed_won.v1", "source": "crm-relay",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {
            "order_number": number, "account": {"external_id": f"001{number}", "name": f"Customer of {number}", "email": "ap@example.com"},
            "currency": currency, "legal_entity": entity, "closed_won_at": "2026-11-23T10:00:00Z", "effective_date": "2026-11-23",
            "lines": [
                {"sku": sku, "description": "Platform seats", "quantity": "25", "unit_price": "40.00", "billing": "recurring", "interval": "month"},
                {"sku": "ONBOARD-FEE", "description": "Onboarding", "quantity": "1", "unit_price": "1500.00", "billing": "one_time"},
            ],
        },
    }


@pytest.fixture
def reference_data(db):
    call_command("seed_reference_data", stdout=open(os.devnull, "w"))
    from sync.connectors.netsuite.sandbox.seed import seed_catalog

    seed_catalog()


def _run(number: str) -> FlowRun | None:
    return FlowRun.objects.filter(flow_type="order_activation", document_number=number).first()


def _finished(number: str):
    run = _run(number)
    return run if run and run.status in ("completed", "failed") else None


def ns_sales_orders(external_id: str) -> int:
    """How many times the ERP sandbox *created* a sales order with this external id."""
    from sync.connectors.netsuite.sandbox.models import ExternalIdLedger, Record

    ledger = ExternalIdLedger.objects.filter(record_type="salesOrder", external_id=external_id).first()
    assert Record.objects.filter(record_type="salesOrder", external_id=external_id).count() == (1 if ledger else 0)
    return ledger.creates if ledger else 0


def stripe_subscriptions(order_number: str) -> int:
    from sync.connectors.stripe.sandbox.simulate import count_objects

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
    wait_for(lambda: FlowStep.objects.filter(flow_run__document_number="ORD-E2E-K", name="erp_sales_order", status="running").exists(), message="ERP step never started")
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
    assert exc.revenue_at_risk == Decimal("2500.00") and exc.currency == "USD"
    assert stripe_subscriptions("ORD-E2E-SKU") == 0  # billing never ran: the ERP step comes first


def test_a_deal_closed_in_salesforce_is_activated_everywhere_and_salesforce_says_so(stack, reference_data, live_server):
    """Salesforce sandbox → relay (HMAC) → webhook → inbox → worker normalises → flow → outbox → Salesforce."""
    from sync.connectors.registry import crm
    from sync.connectors.salesforce.sandbox import simulate as sf
    from sync.tasks import publish_outbox

    stack.start_worker()
    deal = sf.close_won_deal(account_name="Initech", lines=[{"sku": "PLAT-SEAT", "quantity": 10, "unit_price": "45.00"}])
    wait_for(lambda: sf.relay_pending_events(url=f"{live_server.url}/api/v1/webhooks/salesforce/") or FlowRun.objects.filter(document_number=deal["order_number"]).exists(), message="relay never reached the hub")
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
