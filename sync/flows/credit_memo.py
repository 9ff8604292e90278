"""Credit memo: billing issued a credit note → ERP credit memo → CRM."""

from __future__ import annotations

from django.utils import timezone

from sync.canonical.events import money, when
from sync.canonical.store import customer_for_billing_id, refresh_payment_state, safe_external_id
from sync.connectors import registry
from sync.models import CreditMemo, FlowRun, FlowType, Invoice

from .base import Flow, Park, Step, StepContext, StepValidationError
from .common import crm_status, ensure_erp_customer
from .deals import of_invoice_document


def map_credit_memo(ctx: StepContext) -> dict:
    data = ctx.data
    invoice = Invoice.objects.filter(number=data.get("invoice_number") or "").select_related("customer").first()
    customer = invoice.customer if invoice else None
    if customer is None:
        customer = customer_for_billing_id(registry.system_of("billing"), data.get("billing_customer_id"))
    if customer is None:
        if data.get("invoice_number"):
            raise Park(f"Waiting for invoice {data['invoice_number']} before recording its credit memo.", f"invoice:{data['invoice_number']}")
        raise StepValidationError("mapping", "The credit memo's customer is not known to the hub.", "billing_customer_id")
    CreditMemo.objects.update_or_create(
        number=data["credit_memo_number"],
        defaults={
            "invoice": invoice,
            "customer": customer,
            "amount": money(data["amount"]),
            "currency": data["currency"],
            "reason": data.get("reason", "")[:255],
            "issued_at": when(data["issued_at"]),
        },
    )
    if invoice is not None:
        refresh_payment_state(invoice.pk)  # a credit lowers what is due on the invoice
    return {"customer_id": str(customer.pk), "crm_account_id": ""}


def erp_credit_memo(ctx: StepContext) -> dict:
    erp = registry.erp()
    external_id = safe_external_id("CM", ctx.data["credit_memo_number"])
    customer_id = ctx.state["erp_customer"]["erp_customer_id"]
    ctx.request({"system": erp.system, "operation": "upsert credit memo", "external_id": external_id, "credit_memo": ctx.data})
    result = erp.upsert_credit_memo(credit_memo=ctx.data, customer_id=customer_id, external_id=external_id)
    return {"erp_credit_memo_id": result.external_id}


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = data["credit_memo_number"]
    run.currency = data["currency"]
    run.amount = money(data["amount"])
    run.account_name = (data.get("account_name") or "")[:255]
    run.business_started_at = when(data["issued_at"]) or timezone.now()


FLOW = Flow(
    flow_type=FlowType.CREDIT_MEMO,
    event_types=("credit_memo.issued.v1",),
    business_key=lambda data: data["credit_memo_number"],
    steps=[
        Step("map_credit_memo", "hub", map_credit_memo),
        Step("erp_customer", "erp", lambda ctx: ensure_erp_customer(ctx, key="map_credit_memo")),
        Step("erp_credit_memo", "erp", erp_credit_memo),
        Step("crm_status", "hub", crm_status(lambda ctx: {"Q2C_Status__c": f"Credit memo {ctx.data['credit_memo_number']}"}), writeback=True),
    ],
    prepare=prepare,
    deal_of=of_invoice_document,
    description="Credit note → ERP credit memo → CRM",
)
