"""One deal id across every flow of a commercial deal (DESIGN.md, "Deals").

The deal id is the CRM order key of the deal's closed-won order (`order_number`; Salesforce's
OrderNumber). The order's own flow carries it, and so does everything that follows from that
order: amendments, renewals, cancellations and usage closes name it in their event; an invoice
names it in the billing metadata, or is found through the subscription it bills (its link back to
the order); a payment or credit memo through its invoice. A flow whose deal cannot be known yet
(a payment before its invoice) gets it when a later step links it: the runner asks again after
each step until it is found.
"""

from __future__ import annotations

from sync.canonical.store import ref_canonical
from sync.connectors import registry
from sync.models import FlowRun, FlowType, Invoice, Subscription

DEAL_ID_LENGTH = 64


def _clip(value) -> str:
    return str(value or "")[:DEAL_ID_LENGTH]


def of_order(run: FlowRun, data: dict) -> str:
    """Order activation, amendment, renewal, cancellation, usage close: the order they name."""
    return _clip(data.get("order_number"))


def _of_subscription(subscription_id) -> str:
    number = Subscription.objects.filter(pk=subscription_id).values_list("order__number", flat=True).first()
    return _clip(number)


def of_invoice_number(number: str) -> str:
    """The deal of an invoice the hub knows: its subscription's order, else its posting flow's deal."""
    if not number:
        return ""
    invoice = Invoice.objects.filter(number=number).values("subscription_id").first()
    if invoice and invoice["subscription_id"]:
        deal = _of_subscription(invoice["subscription_id"])
        if deal:
            return deal
    return _clip(
        FlowRun.objects.filter(flow_type=FlowType.INVOICE_POSTING, document_number=number).exclude(deal_id="").values_list("deal_id", flat=True).first()
    )


def of_invoice(run: FlowRun, data: dict) -> str:
    """Invoice posting: the order named in the billing metadata, else the billed subscription's order."""
    if data.get("order_number"):
        return _clip(data["order_number"])
    if data.get("billing_subscription_id"):
        sub_id = ref_canonical(system=registry.system_of("billing"), object_type="subscription", external_id=data["billing_subscription_id"])
        if sub_id:
            deal = _of_subscription(sub_id)
            if deal:
                return deal
    return of_invoice_number(data.get("invoice_number", ""))


def of_invoice_document(run: FlowRun, data: dict) -> str:
    """Payment status, credit memo: through the invoice they apply to."""
    return of_invoice_number(data.get("invoice_number") or "")
