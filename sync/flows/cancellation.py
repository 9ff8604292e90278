"""Cancellation: billing cancel → ERP close → CRM status."""

from __future__ import annotations

from django.utils import timezone

from sync.canonical.events import money, when
from sync.connectors import registry
from sync.models import FlowRun, FlowType, Order, Subscription

from .base import Flow, Step, StepContext
from .common import activated_order, crm_status, sales_order_id_for, subscription_id_for
from .deals import of_order


def validate(ctx: StepContext) -> dict:
    order = activated_order(ctx.data["order_number"], waiting_for="cancellation")
    return {"order_id": str(order.pk), "customer_id": str(order.customer_id), "subscription_id": subscription_id_for(order)}


def billing_cancel(ctx: StepContext) -> dict:
    billing = registry.billing()
    sub_id = ctx.state["validate"]["subscription_id"]
    ctx.request({"system": billing.system, "operation": "cancel subscription", "subscription_id": sub_id, "idempotency_key": ctx.idempotency_key})
    billing.cancel_subscription(subscription_id=sub_id, idempotency_key=ctx.idempotency_key)
    return {"cancelled": sub_id}


def erp_close(ctx: StepContext) -> dict:
    erp = registry.erp()
    order = Order.objects.get(pk=ctx.state["validate"]["order_id"])
    so = sales_order_id_for(order)
    ctx.request({"system": erp.system, "operation": "close sales order", "sales_order_id": so})
    erp.close_sales_order(sales_order_id=so, external_id=f"SO-{order.number}")
    return {"closed": so}


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = data["order_number"]
    run.currency = data.get("currency", "") or ""
    run.amount = money(data.get("arr"))
    run.business_started_at = when(data["requested_at"]) or timezone.now()
    order = Order.objects.filter(number=data["order_number"]).select_related("customer").first()
    if order:
        run.account_name, run.customer_id, run.currency = order.customer.name, order.customer_id, run.currency or order.currency


def on_complete(run: FlowRun, now) -> None:
    Order.objects.filter(number=run.document_number).update(status=Order.Status.CANCELLED)
    Subscription.objects.filter(order__number=run.document_number).update(status=Subscription.Status.CANCELED, canceled_at=now)


FLOW = Flow(
    flow_type=FlowType.CANCELLATION,
    event_types=("subscription.cancelled.v1",),
    business_key=lambda data: f"{data['order_number']}:{data['requested_at']}",
    steps=[
        Step("validate", "hub", validate),
        Step("billing_cancel", "billing", billing_cancel),
        Step("erp_close", "erp", erp_close),
        Step("crm_status", "hub", crm_status(lambda ctx: {"Q2C_Status__c": "Cancelled"}), writeback=True),
    ],
    prepare=prepare,
    deal_of=of_order,
    on_complete=on_complete,
    description="Cancellation → billing → ERP close → CRM",
)
