"""Renewal: validate → billing term continues → ERP renewal order → CRM renewal status."""

from __future__ import annotations

from django.utils import timezone

from sync.canonical.events import money, when
from sync.canonical.store import safe_external_id
from sync.connectors import registry
from sync.models import FlowRun, FlowType, Order

from .amendment import registry_customer_id
from .base import Flow, Step, StepContext, StepValidationError
from .common import activated_order, crm_status, sales_order_id_for, subscription_id_for
from .deals import of_order


def validate(ctx: StepContext) -> dict:
    order = activated_order(ctx.data["order_number"], waiting_for="renewal")
    return {"order_id": str(order.pk), "customer_id": str(order.customer_id), "subscription_id": subscription_id_for(order)}


def billing_renewal(ctx: StepContext) -> dict:
    billing = registry.billing()
    sub_id = ctx.state["validate"]["subscription_id"]
    ctx.request({"system": billing.system, "operation": "get subscription", "subscription_id": sub_id})
    sub = billing.get_subscription(subscription_id=sub_id)
    if sub.get("status") not in ("active", "trialing", "past_due"):
        raise StepValidationError("conflict", f"Subscription {sub_id} is {sub.get('status')}; it cannot renew.", "status")
    return {"subscription_id": sub_id, "status": sub.get("status"), "arr": sub.get("arr")}


def erp_renewal(ctx: StepContext) -> dict:
    erp = registry.erp()
    order = Order.objects.get(pk=ctx.state["validate"]["order_id"])
    external_id = safe_external_id("RN", ctx.data["renewal_id"])
    so = sales_order_id_for(order)
    ctx.request({"system": erp.system, "operation": "record renewal order", "external_id": external_id, "sales_order_id": so, "change": ctx.data})
    result = erp.record_order_change(
        change=ctx.data, sales_order_id=so, customer_id=registry_customer_id(erp.system, order.customer_id), external_id=external_id
    )
    return {"renewal_order_id": result.external_id}


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = data["renewal_id"]
    run.currency = data.get("currency", "") or ""
    run.amount = money(data.get("arr"))
    run.business_started_at = when(data["due_at"]) or timezone.now()
    order = Order.objects.filter(number=data["order_number"]).select_related("customer", "legal_entity").first()
    if order:
        run.account_name, run.customer_id = order.customer.name, order.customer_id
        run.currency = run.currency or order.currency
        run.legal_entity = order.legal_entity.code if order.legal_entity else ""


FLOW = Flow(
    flow_type=FlowType.RENEWAL,
    event_types=("subscription.renewed.v1",),
    business_key=lambda data: data["renewal_id"],
    steps=[
        Step("validate", "hub", validate),
        Step("billing_renewal", "billing", billing_renewal),
        Step("erp_renewal", "erp", erp_renewal),
        Step("crm_status", "hub", crm_status(lambda ctx: {"Q2C_Status__c": "Renewed"}), writeback=True),
    ],
    prepare=prepare,
    deal_of=of_order,
    description="Renewal → billing term → ERP renewal order → CRM",
)
