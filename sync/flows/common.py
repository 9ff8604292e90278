"""Steps several flows share: make sure the customer exists in the ERP and billing, and
queue a status write-back to the CRM through the outbox."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from sync.canonical.store import ref_external, ref_set, safe_external_id
from sync.connectors import registry
from sync.customers.matching import Resolution, review_message
from sync.models import Customer, ExternalRef, FlowRun, Order, Subscription
from sync.outbox import outbox_add

from .base import Park, ReviewPark, StepContext, StepValidationError
from .claims import creating


def customer_payload(customer: Customer, crm_account_id: str = "") -> dict:
    entity = customer.legal_entity
    return {
        "hub_id": str(customer.pk),
        "name": customer.name,
        "email": customer.email,
        "tax_id": customer.tax_id,
        "currency": customer.currency,
        "legal_entity": entity.code if entity else "",
        "erp_subsidiary_id": entity.erp_subsidiary_id if entity else "",
        "crm_account_id": crm_account_id,
        "payment_terms": customer.payment_terms,
    }


def wait_for_review(resolution: Resolution) -> None:
    """Park the flow while its customer waits for a person's match decision."""
    if not resolution.needs_review:
        return
    match = resolution.match
    candidate = match.candidate
    raise ReviewPark(
        f"Waiting for a decision: is {resolution.customer.name} the same customer as {candidate.name if candidate else 'another one'}? (customer match #{match.pk})",
        match.waits_for,
        match_id=match.pk,
        error_class=match.error_class or "duplicate",
        message=review_message(match),
        open_exception=match.exception_id is None,
        payload={
            "customer_match": match.pk,
            "record": match.record,
            "candidate": {"customer_id": str(candidate.pk), "name": candidate.name} if candidate else None,
            "score": str(match.score),
            "reasons": match.reasons,
        },
    )


def _customer(ctx: StepContext, key: str = "validate") -> Customer:
    customer_id = ctx.state.get(key, {}).get("customer_id")
    customer = Customer.objects.select_related("legal_entity").filter(pk=customer_id).first()
    if customer is None:
        raise StepValidationError("mapping", "The customer of this document is not known to the hub.", "customer")
    return customer


def first_crm_account(customer: Customer) -> str:
    """The customer's oldest CRM account id (a merged customer has several)."""
    return (
        ExternalRef.objects.filter(canonical_type="customer", canonical_id=customer.pk, object_type="Account")
        .order_by("created_at", "pk")
        .values_list("external_id", flat=True)
        .first()
        or ""
    )


def ensure_erp_customer(ctx: StepContext, key: str = "validate") -> dict:
    customer = _customer(ctx, key)
    erp = registry.erp()
    existing = ref_external(system=erp.system, object_type="customer", canonical_type="customer", canonical_id=customer.pk)
    if existing and key != "validate":
        return {"erp_customer_id": existing, "created": False}
    # one ERP customer per hub customer: keyed by its first CRM account, so after a merge the
    # second account's orders go to the survivor's ERP customer instead of creating another
    crm_account = first_crm_account(customer) or ctx.state.get(key, {}).get("crm_account_id", "")
    external_id = safe_external_id("CUST", crm_account or str(customer.pk))
    payload = customer_payload(customer, crm_account)
    ctx.request({"system": erp.system, "operation": "upsert customer", "external_id": external_id, "customer": payload})
    with creating(erp.system, "customer", customer.pk):  # an ERP without upsert-by-external-id looks, then creates
        result = erp.upsert_customer(customer=payload, external_id=external_id)
        ref_set(system=erp.system, object_type="customer", external_id=result.external_id, canonical_type="customer", canonical_id=customer.pk)
    return {"erp_customer_id": result.external_id, "external_id": external_id, "created": result.created}


def ensure_billing_customer(ctx: StepContext, key: str = "validate") -> dict:
    """The hub customer's billing customer, created once however many flows ask at the same time
    (sync.flows.claims): under the claim the hub's reference is read again, and the create carries
    an idempotency key of the hub customer (not of this flow), so a retry after a crash between the
    vendor's answer and our reference gets the same customer back."""
    customer = _customer(ctx, key)
    billing = registry.billing()

    def known() -> str | None:
        return ref_external(system=billing.system, object_type="customer", canonical_type="customer", canonical_id=customer.pk)

    if existing := known():
        return {"billing_customer_id": existing, "created": False}
    payload = customer_payload(customer, first_crm_account(customer) or ctx.state.get(key, {}).get("crm_account_id", ""))
    idempotency_key = f"customer-{customer.pk}"
    with creating(billing.system, "customer", customer.pk):
        if existing := known():
            return {"billing_customer_id": existing, "created": False}
        ctx.request({"system": billing.system, "operation": "upsert customer", "customer": payload, "idempotency_key": idempotency_key})
        result = billing.upsert_customer(customer=payload, idempotency_key=idempotency_key)
        ref_set(system=billing.system, object_type="customer", external_id=result.external_id, canonical_type="customer", canonical_id=customer.pk)
    return {"billing_customer_id": result.external_id, "created": result.created}


def crm_status(fields_for: Callable[[StepContext], dict], object_type: str = "Order", record_for: Callable[[StepContext], str] | None = None):
    """A step that queues the CRM write-back in the outbox (published by the status worker)."""

    def step(ctx: StepContext) -> dict:
        record_id = record_for(ctx) if record_for else crm_order_id(ctx.run)
        fields = fields_for(ctx)
        ctx.request({"outbox": "crm.status", "object_type": object_type, "external_id": record_id, "fields": fields})
        with transaction.atomic():
            outbox_add(
                topic="crm.status",
                key=ctx.idempotency_key,
                payload={"object_type": object_type, "external_id": record_id, "fields": fields},
                correlation_id=ctx.run.correlation_id,
            )
        return {"queued": True, "crm_record_id": record_id, "fields": fields}

    return step


def crm_order_id(run: FlowRun) -> str:
    """The CRM record of the order behind this flow (from the event, or from the order's reference)."""
    data = run.context["event"]["data"]
    if data.get("crm_record_id"):
        return data["crm_record_id"]
    order_number = data.get("order_number")
    if not order_number:
        return ""
    order = Order.objects.filter(number=order_number).only("pk").first()
    if order is None:
        return ""
    crm = registry.system_of("crm")
    return ref_external(system=crm, object_type="Order", canonical_type="order", canonical_id=order.pk) or ""


def activated_order(order_number: str, *, waiting_for: str) -> Order:
    """The order behind an amendment/renewal/cancellation, once it is activated; else park."""
    order = Order.objects.filter(number=order_number).select_related("customer", "legal_entity").first()
    if order is None or order.status != Order.Status.ACTIVATED:
        raise Park(f"Waiting for order {order_number} to be activated before the {waiting_for}.", f"order:{order_number}")
    return order


def subscription_id_for(order: Order) -> str:
    billing = registry.system_of("billing")
    subscription = Subscription.objects.filter(order=order).only("pk").first()
    sub = subscription and ref_external(system=billing, object_type="subscription", canonical_type="subscription", canonical_id=subscription.pk)
    if not sub:
        raise StepValidationError("not_found", f"Order {order.number} has no billing subscription.", "order_number")
    return sub


def sales_order_id_for(order: Order) -> str:
    erp = registry.system_of("erp")
    so = ref_external(system=erp, object_type="salesOrder", canonical_type="order", canonical_id=order.pk)
    if not so:
        raise StepValidationError("not_found", f"Order {order.number} has no ERP sales order.", "order_number")
    return so
