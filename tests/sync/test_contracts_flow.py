"""The same closed-won order sent as order.closed_won.v1 and as v2 makes the same flow (issue 15
item 5): the inbox upcasts v1 before it routes, so the order activation flow only ever sees v2.

In-process tests of the routing first; then the whole flow through a real worker and the three
sandboxes (as tests/sync/test_flows_e2e.py), comparing what reached the hub, the ERP and billing."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from sync.engine import runner
from sync.engine.inbox import accept_canonical, inbox_process
from sync.flows.base import StepContext
from sync.flows.registry import flow_for, flow_for_event
from sync.models import FlowRun, FlowType, InboxEvent, Order, Subscription

from .conftest import wait_for

DEAL = "006A00000CV"


def order_v1(number: str, *, deal: str | None = DEAL) -> dict:
    data = {
        "order_number": number,
        "account": {"external_id": f"001{number}", "name": f"Customer of {number}", "email": "ap@example.com"},
        "currency": "USD",
        "legal_entity": "US01",
        "closed_won_at": "2026-11-23T10:00:00Z",
        "effective_date": "2026-11-23",
        "lines": [
            {"sku": "PLAT-SEAT", "description": "Platform seats", "quantity": "25", "unit_price": "40.00", "billing": "recurring", "interval": "month"},
            {"sku": "ONBOARD-FEE", "description": "Onboarding", "quantity": "1", "unit_price": "1500.00", "billing": "one_time"},
        ],
    }
    if deal:
        data["opportunity_id"] = deal
    return {"id": f"evt-{uuid.uuid4().hex[:12]}", "type": "order.closed_won.v1", "source": "crm-relay", "occurred_at": "2026-11-23T10:00:00Z", "data": data}


def order_v2(number: str, *, deal: str | None = DEAL) -> dict:
    """The same order as a v2 sender writes it."""
    event = order_v1(number, deal=None)
    data = event["data"]
    for line in data["lines"]:
        line["charge_type"] = line.pop("billing")
    if deal:
        data["deal_id"] = deal
    return {**event, "type": "order.closed_won.v2"}


def _comparable(data: dict, number: str) -> dict:
    """Event data without what differs between two orders on purpose (their number and account)."""
    out = copy.deepcopy(data)
    assert out.pop("order_number") == number
    assert out.pop("account")["external_id"] == f"001{number}"
    return out


# --- routing, in-process --------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_flow_knows_only_v2_and_the_inbox_gives_it_a_v1_event_as_v2():
    assert flow_for_event("order.closed_won.v2").flow_type == FlowType.ORDER_ACTIVATION
    assert flow_for_event("order.closed_won.v1") is None  # nothing routes the old version itself
    [v1], [v2] = accept_canonical([order_v1("ORD-CV-A")]), accept_canonical([order_v2("ORD-CV-B")])
    assert inbox_process(v1["inbox_id"]) == inbox_process(v2["inbox_id"]) == InboxEvent.Status.PROCESSED
    run_a, run_b = (FlowRun.objects.get(document_number=n) for n in ("ORD-CV-A", "ORD-CV-B"))
    assert run_a.flow_type == run_b.flow_type == FlowType.ORDER_ACTIVATION
    assert run_a.context["event"]["type"] == run_b.context["event"]["type"] == "order.closed_won.v2"
    assert _comparable(run_a.context["event"]["data"], "ORD-CV-A") == _comparable(run_b.context["event"]["data"], "ORD-CV-B")
    assert (run_a.amount, run_a.currency) == (run_b.amount, run_b.currency) == (Decimal("13500.00"), "USD")
    assert InboxEvent.objects.get(pk=v1["inbox_id"]).envelope["type"] == "order.closed_won.v1"  # the inbox keeps what was sent


@pytest.mark.django_db
def test_one_order_sent_as_v1_and_again_as_v2_is_one_flow():
    flow = flow_for(FlowType.ORDER_ACTIVATION)
    first, created = runner.flow_start(flow=flow, envelope=order_v1("ORD-CV-TWICE"))
    again, created_again = runner.flow_start(flow=flow, envelope=order_v2("ORD-CV-TWICE"))
    assert created and not created_again and again.pk == first.pk
    assert first.context["event"]["type"] == "order.closed_won.v2"  # stored as the current version


@pytest.mark.django_db
def test_a_run_stored_with_a_v1_event_before_v2_existed_reads_v2():
    """Runs in flight when v2 was deployed keep their v1 event; their steps read it upcast."""
    envelope = order_v1("ORD-CV-OLD")
    run = FlowRun.objects.create(
        flow_type=FlowType.ORDER_ACTIVATION,
        idempotency_key="order_activation:ORD-CV-OLD",
        business_started_at=timezone.now(),
        context={"event": envelope, "steps": {}},
    )
    step = run.steps.create(seq=1, name="validate", system="hub", idempotency_key="q2c-order_activation:ORD-CV-OLD:validate")
    data = StepContext(run=run, step=step).data
    assert data == order_v2("ORD-CV-OLD")["data"]
    assert run.context["event"] == envelope  # nothing rewritten in place
    run.context["payload_overrides"] = {"validate": {**envelope["data"], "currency": "EUR"}}  # an operator's edit of that v1 data
    assert StepContext(run=run, step=step).data["lines"][0]["charge_type"] == "recurring"


# --- the whole flow, real worker and sandboxes ---------------------------------------------------
def _finished(number: str):
    run = FlowRun.objects.filter(flow_type=FlowType.ORDER_ACTIVATION, document_number=number).first()
    return run if run and run.status in ("completed", "failed") else None


def _hub(number: str) -> dict:
    order = Order.objects.get(number=number)
    subscription = Subscription.objects.get(order=order)
    return {
        "total": order.total_amount,
        "lines": sorted(order.lines.values_list("sku", "quantity", "unit_price", "amount", "charge_type", "interval", "interval_count")),
        "arr": subscription.arr,
        "items": sorted(subscription.items.values_list("sku", "quantity", "unit_amount", "charge_type", "interval", "interval_count")),
    }


def _erp(number: str) -> dict:
    from sandboxes.netsuite.models import Record

    body = Record.objects.get(record_type="salesOrder", external_id=f"SO-{number}").data
    lines = [{k: v for k, v in line.items() if k in ("item", "quantity", "rate", "amount")} for line in body["item"]["items"]]
    return {"otherRefNum": body.get("otherRefNum"), "tranId": body.get("tranId"), "lines": lines}


def _billing(number: str) -> dict:
    from sandboxes.stripe.models import StripeObject

    sub = StripeObject.objects.get(object="subscription", data__metadata__order_number=number).data
    items = sorted(
        (i["metadata"].get("sku"), i.get("quantity"), i["price"].get("unit_amount"), (i["price"].get("recurring") or {}).get("interval"))
        for i in sub["items"]["data"]
    )
    return {"metadata": {k: v for k, v in sub["metadata"].items() if k != "order_number"}, "items": items}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_same_order_as_v1_and_as_v2_reaches_the_erp_and_billing_the_same_way(stack, reference_data):
    stack.start_worker()
    accept_canonical([order_v1("ORD-CV-1"), order_v2("ORD-CV-2")])
    runs = {n: wait_for(lambda n=n: _finished(n), message=f"{n} did not finish") for n in ("ORD-CV-1", "ORD-CV-2")}
    for run in runs.values():
        assert run.status == "completed", list(run.steps.values("name", "status", "error_message"))
    one, two = runs["ORD-CV-1"], runs["ORD-CV-2"]
    assert one.flow_type == two.flow_type == FlowType.ORDER_ACTIVATION
    assert list(one.steps.order_by("seq").values_list("name", "status")) == list(two.steps.order_by("seq").values_list("name", "status"))
    assert (one.amount, one.currency, one.legal_entity) == (two.amount, two.currency, two.legal_entity) == (Decimal("13500.00"), "USD", "US01")
    assert (one.deal_id, two.deal_id) == ("ORD-CV-1", "ORD-CV-2")  # the hub's deal key stays the order number
    assert _comparable(one.context["event"]["data"], "ORD-CV-1") == _comparable(two.context["event"]["data"], "ORD-CV-2")

    hub = _hub("ORD-CV-1")
    assert hub == _hub("ORD-CV-2")
    assert hub["lines"] == [
        ("ONBOARD-FEE", Decimal("1"), Decimal("1500.00"), Decimal("1500.00"), "one_time", "", 1),
        ("PLAT-SEAT", Decimal("25"), Decimal("40.00"), Decimal("1000.00"), "recurring", "month", 1),
    ]
    assert hub["arr"] == Decimal("12000.00")

    erp = _erp("ORD-CV-1")
    assert {**erp, "tranId": None} == {**_erp("ORD-CV-2"), "tranId": None}
    assert len(erp["lines"]) == 2 and erp["otherRefNum"] == DEAL  # v1's opportunity_id and v2's deal_id land in the same ERP field

    billing = _billing("ORD-CV-1")
    assert billing == _billing("ORD-CV-2")
    assert billing["metadata"]["opportunity_id"] == DEAL and billing["items"] == [("PLAT-SEAT", 25, 4000, "month")]
