"""Invoice posting: billing finalized an invoice → map lines, tax, entity → ERP invoice → CRM.

Invoice sync lag = posted_at − finalized_at.
"""

from __future__ import annotations

from django.utils import timezone

from sync.canonical.events import money, when
from sync.canonical.store import customer_for_billing_id, invoice_upsert, ref_external, ref_set, safe_external_id, subscription_for_invoice
from sync.connectors import registry
from sync.models import FlowRun, FlowType, Invoice, Order

from .base import Flow, Park, Step, StepContext, StepValidationError
from .common import crm_status, ensure_erp_customer
from .deals import of_invoice


def map_invoice(ctx: StepContext) -> dict:
    data = ctx.data
    billing_system = registry.system_of("billing")
    order = Order.objects.filter(number=data["order_number"]).select_related("customer", "legal_entity").first() if data.get("order_number") else None
    customer = customer_for_billing_id(billing_system, data.get("billing_customer_id"))
    if customer is None and order is not None:
        customer = order.customer
    if customer is None:
        if data.get("order_number"):
            raise Park(f"Waiting for order {data['order_number']} to reach the hub before posting its invoice.", f"order:{data['order_number']}")
        raise StepValidationError(
            "mapping", f"Billing customer {data.get('billing_customer_id') or '(none)'} is not linked to any hub customer.", "billing_customer_id"
        )
    entity = (order.legal_entity if order else None) or customer.legal_entity
    if entity is None:
        raise StepValidationError("validation", "The invoice's legal entity is unknown (no order entity, no customer entity).", "legal_entity")
    subscription = subscription_for_invoice(billing_system=billing_system, data=data, order=order)
    if subscription is None and order is not None and data.get("billing_subscription_id") and order.status == Order.Status.CLOSED_WON:
        # billing invoiced the new subscription before the activation recorded it: link it once it has
        raise Park(f"Waiting for order {order.number} to be activated before posting its first invoice.", f"order:{order.number}")
    invoice = invoice_upsert(data=data, customer=customer, order=order, subscription=subscription)
    sales_order = ref_external(system=registry.system_of("erp"), object_type="salesOrder", canonical_type="order", canonical_id=order.pk) if order else None
    return {
        "customer_id": str(customer.pk),
        "invoice_id": str(invoice.pk),
        "legal_entity": entity.code,
        "erp_subsidiary_id": entity.erp_subsidiary_id,
        "sales_order_id": sales_order or "",
        "crm_account_id": "",
        "subscription_id": str(subscription.pk) if subscription else "",
    }


def erp_invoice(ctx: StepContext) -> dict:
    erp = registry.erp()
    mapped = ctx.state["map_invoice"]
    invoice = {**ctx.data, "erp_subsidiary_id": mapped["erp_subsidiary_id"], "legal_entity": mapped["legal_entity"], "sales_order_id": mapped["sales_order_id"]}
    external_id = safe_external_id("INV", ctx.data["invoice_number"])
    customer_id = ctx.state["erp_customer"]["erp_customer_id"]
    ctx.request({"system": erp.system, "operation": "upsert invoice", "external_id": external_id, "customer_id": customer_id, "invoice": invoice})
    result = erp.upsert_invoice(invoice=invoice, customer_id=customer_id, external_id=external_id)
    ref_set(system=erp.system, object_type="invoice", external_id=result.external_id, canonical_type="invoice", canonical_id=mapped["invoice_id"])
    return {"erp_invoice_id": result.external_id, "external_id": external_id, "created": result.created}


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = data["invoice_number"]
    run.currency = data["currency"]
    run.amount = money(data["total"])
    run.account_name = (data.get("account_name") or "")[:255]
    run.legal_entity = data.get("legal_entity", "") or ""
    run.finalized_at = when(data["finalized_at"])
    run.business_started_at = run.finalized_at or timezone.now()
    if not run.account_name or not run.legal_entity:
        order = Order.objects.filter(number=data.get("order_number") or "").select_related("customer", "legal_entity").first()
        if order:
            run.account_name = run.account_name or order.customer.name
            run.legal_entity = run.legal_entity or (order.legal_entity.code if order.legal_entity else "")


def on_complete(run: FlowRun, now) -> None:
    run.posted_at = now
    Invoice.objects.filter(number=run.document_number).update(posted_at=now)


FLOW = Flow(
    flow_type=FlowType.INVOICE_POSTING,
    event_types=("invoice.finalized.v1",),
    business_key=lambda data: data["invoice_number"],
    steps=[
        Step("map_invoice", "hub", map_invoice),
        Step("erp_customer", "erp", lambda ctx: ensure_erp_customer(ctx, key="map_invoice")),
        Step("erp_invoice", "erp", erp_invoice),
        Step("crm_status", "hub", crm_status(lambda ctx: {"Last_Invoice_Status__c": f"Posted {ctx.data['invoice_number']}"}), writeback=True),
    ],
    prepare=prepare,
    deal_of=of_invoice,
    on_complete=on_complete,
    provides=lambda data: [f"invoice:{data['invoice_number']}"],
    description="Finalized invoice → ERP invoice → CRM",
)
