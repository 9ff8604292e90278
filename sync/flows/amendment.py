"""Amendment: a live subscription changes → billing (with proration) → ERP change order → CRM.

Arrives before its order is activated? It parks and resumes when the order completes.
Cancelled after a permanent ERP failure? Compensation puts the billing subscription back.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.utils import timezone

from sync.canonical.charges import ChargeError, charge_of
from sync.canonical.events import money, when
from sync.canonical.store import ref_external, safe_external_id
from sync.connectors import registry
from sync.models import Amendment, FlowRun, FlowType, Order, Subscription, SubscriptionItem
from sync.models.canonical import annual_factor

from .base import Flow, Step, StepContext
from .common import activated_order, crm_status, sales_order_id_for, subscription_id_for
from .deals import of_order


def validate(ctx: StepContext) -> dict:
    order = activated_order(ctx.data["order_number"], waiting_for="amendment")
    subscription_id = subscription_id_for(order)
    Amendment.objects.get_or_create(
        id=ctx.run.context.setdefault("amendment_uuid", str(uuid.uuid4())),
        defaults={
            "arr_delta": money(ctx.data.get("arr_delta")),
            "currency": ctx.data["currency"],
            "changes": {"items": ctx.data["changes"]},
            "requested_at": when(ctx.data["requested_at"]),
            "effective_date": ctx.data.get("effective_date") or None,
        },
    )
    return {"order_id": str(order.pk), "customer_id": str(order.customer_id), "subscription_id": subscription_id}


def billing_change(ctx: StepContext) -> dict:
    billing = registry.billing()
    sub_id = ctx.state["validate"]["subscription_id"]
    before = ctx.state.get("billing_change", {}).get("before") or billing.get_subscription(subscription_id=sub_id)
    # remember the subscription as it was, before changing it, so cancel can restore it
    ctx.run.context.setdefault("steps", {})["billing_change"] = {"before": before}
    FlowRun.objects.filter(pk=ctx.run.pk).update(context=ctx.run.context)
    charge_keys = ("billing", "interval", "interval_count", "description")
    items = [
        {"sku": c["sku"], "quantity": c["quantity"], "unit_price": c["unit_price"], **{k: c[k] for k in charge_keys if k in c}} for c in ctx.data["changes"]
    ]
    ctx.request(
        {
            "system": billing.system,
            "operation": "update subscription",
            "subscription_id": sub_id,
            "items": items,
            "idempotency_key": ctx.idempotency_key,
            "prorate": True,
        }
    )
    result = billing.update_subscription(subscription_id=sub_id, items=items, idempotency_key=ctx.idempotency_key, prorate=True)
    return {"before": before, "subscription_id": result.external_id}


def restore_subscription(ctx: StepContext) -> dict:
    billing = registry.billing()
    before = ctx.state["billing_change"]["before"]
    changed_skus = {c["sku"] for c in ctx.data["changes"]}
    old = {item["sku"]: item for item in before.get("items", [])}
    items = [
        {"sku": sku, "quantity": old[sku]["quantity"], "unit_price": old[sku]["unit_price"]} if sku in old else {"sku": sku, "quantity": "0", "unit_price": "0"}
        for sku in sorted(changed_skus)
    ]
    billing.update_subscription(subscription_id=before["id"], items=items, idempotency_key=f"{ctx.idempotency_key}:undo", prorate=True)
    return {"restored": items}


def erp_change(ctx: StepContext) -> dict:
    erp = registry.erp()
    order = Order.objects.get(pk=ctx.state["validate"]["order_id"])
    so = sales_order_id_for(order)
    customer = registry_customer_id(erp.system, order.customer_id)
    external_id = safe_external_id("CO", ctx.data["amendment_id"])
    ctx.request({"system": erp.system, "operation": "record order change", "external_id": external_id, "sales_order_id": so, "change": ctx.data})
    result = erp.record_order_change(change=ctx.data, sales_order_id=so, customer_id=customer, external_id=external_id)
    return {"change_order_id": result.external_id, "external_id": external_id}


def registry_customer_id(system: str, customer_id) -> str:
    return ref_external(system=system, object_type="customer", canonical_type="customer", canonical_id=customer_id) or ""


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = data["amendment_id"]
    run.currency = data["currency"]
    run.amount = money(data.get("arr_delta"))
    run.business_started_at = when(data["requested_at"]) or timezone.now()
    order = Order.objects.filter(number=data["order_number"]).select_related("customer", "legal_entity").first()
    if order:
        run.account_name = order.customer.name
        run.legal_entity = order.legal_entity.code if order.legal_entity else ""
        run.customer_id = order.customer_id


def on_complete(run: FlowRun, now) -> None:
    """The amendment is applied: the hub's subscription items and ARR follow the change."""
    Amendment.objects.filter(id=run.context.get("amendment_uuid")).update(completed_at=now)
    data = run.context["event"]["data"]
    subscription = Subscription.objects.filter(order__number=data["order_number"]).order_by("created_at").first()
    if subscription is None:
        return
    items = {item.sku: item for item in subscription.items.all()}
    for i, change in enumerate(data["changes"]):
        try:
            charge = charge_of(change, i, prefix="changes")
        except ChargeError:
            charge = None
        quantity = Decimal(str(change["quantity"]))
        item = items.get(change["sku"])
        if quantity == 0:
            if item is not None:
                item.delete()
                items.pop(change["sku"])
            continue
        if item is None:
            item = SubscriptionItem(subscription=subscription, sku=change["sku"])
            items[change["sku"]] = item
        item.quantity, item.unit_amount = quantity, money(change["unit_price"])
        if charge is not None:
            item.charge_type, item.interval, item.interval_count = charge.charge_type, charge.interval, charge.interval_count
        item.save()
    arr = sum((i.quantity * i.unit_amount * annual_factor(i.charge_type, i.interval, i.interval_count) for i in items.values()), Decimal(0))
    Subscription.objects.filter(pk=subscription.pk).update(arr=arr)


FLOW = Flow(
    flow_type=FlowType.AMENDMENT,
    event_types=("subscription.amended.v1",),
    business_key=lambda data: data["amendment_id"],
    steps=[
        Step("validate", "hub", validate),
        Step("billing_change", "billing", billing_change, restore_subscription, "restore the subscription as it was"),
        Step("erp_change", "erp", erp_change),
        Step("crm_status", "hub", crm_status(lambda ctx: {"Q2C_Status__c": "Amended"}), writeback=True),
    ],
    prepare=prepare,
    deal_of=of_order,
    on_complete=on_complete,
    description="Subscription change → billing (prorated) → ERP change order → CRM",
)
