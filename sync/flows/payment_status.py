"""Payment status: payment received → ERP customer payment → CRM; failed → CRM dunning status."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.utils import timezone

from sync.canonical.events import money, when
from sync.canonical.store import ref_external, refresh_payment_state, safe_external_id
from sync.connectors import registry
from sync.models import FlowRun, FlowType, Invoice, Payment

from .base import Flow, Park, Step, StepContext
from .common import crm_status
from .deals import of_invoice_document


def _received(ctx_or_data) -> bool:
    return "received_at" in ctx_or_data


def map_payment(ctx: StepContext) -> dict:
    invoice = Invoice.objects.filter(number=ctx.data["invoice_number"]).select_related("customer", "legal_entity").first()
    if invoice is None or (invoice.posted_at is None and _received(ctx.data)):
        raise Park(f"Waiting for invoice {ctx.data['invoice_number']} to be posted to the ERP.", f"invoice:{ctx.data['invoice_number']}")
    if not ctx.run.account_name:  # the payment arrived before its invoice: fill in the business context now
        ctx.run.account_name, ctx.run.customer_id = invoice.customer.name, invoice.customer_id
        ctx.run.legal_entity = invoice.legal_entity.code if invoice.legal_entity_id else ""
        FlowRun.objects.filter(pk=ctx.run.pk).update(account_name=ctx.run.account_name, customer_id=ctx.run.customer_id, legal_entity=ctx.run.legal_entity)
    erp_system = registry.system_of("erp")
    Payment.objects.update_or_create(
        id=ctx.run.context.setdefault("payment_uuid", str(uuid.uuid4())),
        defaults={
            "invoice": invoice,
            "customer": invoice.customer,
            "status": "received" if _received(ctx.data) else "failed",
            "amount": money(ctx.data["amount"]),
            "currency": ctx.data["currency"],
            "occurred_at": when(ctx.data.get("received_at") or ctx.data.get("failed_at")),
            "failure_reason": ctx.data.get("reason", "")[:255],
        },
    )
    invoice = refresh_payment_state(invoice.pk)  # partially paid, paid or overpaid: what was received decides (docs/MONEY.md)
    amount = money(ctx.data["amount"])
    owed_before = invoice.amount_due - (invoice.amount_paid - amount)  # what the other payments left to collect
    return {
        "payment_state": invoice.status,
        "amount_remaining": str(invoice.amount_remaining),
        "credit_balance": str(invoice.credit_balance),
        # the ERP applies at most what the invoice still owed; an overpayment's rest stays unapplied (a customer credit)
        "apply_amount": str(max(min(amount, owed_before), Decimal(0))) if _received(ctx.data) else "0",
        "invoice_id": str(invoice.pk),
        "customer_id": str(invoice.customer_id),
        "erp_customer_id": ref_external(system=erp_system, object_type="customer", canonical_type="customer", canonical_id=invoice.customer_id) or "",
        "erp_invoice_id": ref_external(system=erp_system, object_type="invoice", canonical_type="invoice", canonical_id=invoice.pk) or "",
    }


def erp_payment(ctx: StepContext) -> dict:
    if not _received(ctx.data):
        return {"skipped": "failed payments are not posted to the ERP"}
    erp = registry.erp()
    mapped = ctx.state["map_payment"]
    external_id = safe_external_id("PAY", ctx.data["payment_id"])
    ctx.request(
        {"system": erp.system, "operation": "upsert customer payment", "external_id": external_id, "payment": ctx.data, "invoice_id": mapped["erp_invoice_id"]}
    )
    payment = {**ctx.data, "apply_amount": mapped.get("apply_amount", ctx.data["amount"])}
    result = erp.upsert_payment(payment=payment, customer_id=mapped["erp_customer_id"], invoice_id=mapped["erp_invoice_id"] or None, external_id=external_id)
    return {"erp_payment_id": result.external_id}


def crm_fields(ctx: StepContext) -> dict:
    if _received(ctx.data):
        state = ctx.state.get("map_payment", {}).get("payment_state", "paid")
        words = {"partially_paid": "Partially paid", "overpaid": "Overpaid", "paid": "Paid"}.get(state, "Payment received")
        return {"Payment_Status__c": f"{words} {ctx.data['invoice_number']}"}
    return {"Payment_Status__c": f"Payment failed {ctx.data['invoice_number']}: {ctx.data.get('reason', '')}".strip()[:255]}


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = data["invoice_number"]
    run.currency = data["currency"]
    run.amount = money(data["amount"])
    run.business_started_at = when(data.get("received_at") or data.get("failed_at")) or timezone.now()
    invoice = Invoice.objects.filter(number=data["invoice_number"]).select_related("customer", "legal_entity").first()
    if invoice:
        run.account_name, run.customer_id = invoice.customer.name, invoice.customer_id
        run.legal_entity = invoice.legal_entity.code if invoice.legal_entity else ""


FLOW = Flow(
    flow_type=FlowType.PAYMENT_STATUS,
    event_types=("payment.received.v1", "payment.failed.v1"),
    business_key=lambda data: data["payment_id"],
    steps=[
        Step("map_payment", "hub", map_payment),
        Step("erp_payment", "erp", erp_payment),
        Step("crm_status", "hub", crm_status(crm_fields), writeback=True),
    ],
    prepare=prepare,
    deal_of=of_invoice_document,
    description="Payment received/failed → ERP customer payment → CRM",
)
