"""Hub-side writes of canonical objects and their cross-system references."""

from __future__ import annotations

import re
from decimal import Decimal

from django.db import connection, transaction

from sync.models import Customer, ExternalRef, Invoice, LegalEntity, Order, OrderLine, Product

from .events import money, when

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_external_id(*parts: str) -> str:
    """External ids the ERP accepts (letters, digits, _ and -; `|` would split multi-selects)."""
    return _SAFE.sub("-", "-".join(str(p) for p in parts if p)).strip("-")[:255]


def ref_set(*, system: str, object_type: str, external_id: str, canonical_type: str, canonical_id) -> None:
    if not external_id:
        return
    # one INSERT … ON CONFLICT DO UPDATE: no savepoint + SELECT FOR UPDATE + write per step, and
    # concurrent writers of the same reference simply agree (the last one's mapping wins)
    ExternalRef.objects.bulk_create(
        [ExternalRef(system=system, object_type=object_type, external_id=str(external_id), canonical_type=canonical_type, canonical_id=canonical_id)],
        update_conflicts=True,
        unique_fields=["system", "object_type", "external_id"],
        update_fields=["canonical_type", "canonical_id"],
    )


def ref_external(*, system: str, object_type: str, canonical_type: str, canonical_id) -> str | None:
    return (
        ExternalRef.objects.filter(system=system, object_type=object_type, canonical_type=canonical_type, canonical_id=canonical_id)
        .order_by("-created_at")
        .values_list("external_id", flat=True)
        .first()
    )


def ref_canonical(*, system: str, object_type: str, external_id: str):
    return ExternalRef.objects.filter(system=system, object_type=object_type, external_id=str(external_id)).values_list("canonical_id", flat=True).first()


def legal_entity(code: str | None, currency: str) -> LegalEntity | None:
    if code:
        return LegalEntity.objects.filter(code=code).first()
    return LegalEntity.objects.filter(base_currency=currency).order_by("code").first()


def lock_account(source: str, external_id: str) -> None:
    """Serialise work on one CRM account (an order flow and a customer sync may race)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"account:{source}:{external_id}"])


@transaction.atomic
def customer_from_account(*, source: str, account: dict, currency: str, entity: LegalEntity | None) -> Customer:
    """Find the hub customer for a CRM account (by reference), or create it — once, even under races."""
    lock_account(source, account["external_id"])
    canonical_id = ref_canonical(system=source, object_type="Account", external_id=account["external_id"])
    customer = Customer.objects.filter(pk=canonical_id).first() if canonical_id else None
    fields = {
        "name": account["name"][:255],
        "email": account.get("email", "") or "",
        "tax_id": account.get("tax_id", "") or "",
        "segment": account.get("segment", "") or "",
        "account_owner": account.get("owner", "") or "",
        "currency": currency,
        "legal_entity": entity,
    }
    if customer is None:
        customer = Customer.objects.create(**fields)
        ref_set(system=source, object_type="Account", external_id=account["external_id"], canonical_type="customer", canonical_id=customer.pk)
    else:
        for name, value in fields.items():
            if value not in ("", None):
                setattr(customer, name, value)
        customer.save()
    return customer


def order_upsert(*, source: str, data: dict, customer: Customer, entity: LegalEntity | None) -> Order:
    total = (
        money(data.get("total_amount"))
        if data.get("total_amount")
        else sum((money(line["unit_price"]) * Decimal(str(line["quantity"])) for line in data["lines"]), Decimal("0"))
    )
    order, _ = Order.objects.update_or_create(
        number=data["order_number"],
        defaults={
            "customer": customer,
            "legal_entity": entity,
            "currency": data["currency"],
            "total_amount": total,
            "effective_date": data.get("effective_date") or None,
            "closed_won_at": when(data.get("closed_won_at")),
        },
    )
    order.lines.all().delete()
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            sku=line["sku"],
            description=line.get("description", "")[:255],
            quantity=Decimal(str(line["quantity"])),
            unit_price=money(line["unit_price"]),
            amount=money(line["unit_price"]) * Decimal(str(line["quantity"])),
            product=Product.objects.get_or_create(sku=line["sku"], defaults={"name": line.get("description") or line["sku"]})[0],
        )
        for line in data["lines"]
    )
    if data.get("crm_record_id"):
        ref_set(system=source, object_type="Order", external_id=data["crm_record_id"], canonical_type="order", canonical_id=order.pk)
    return order


def invoice_upsert(*, data: dict, customer: Customer, order: Order | None) -> Invoice:
    invoice, _ = Invoice.objects.update_or_create(
        number=data["invoice_number"],
        defaults={
            "customer": customer,
            "legal_entity": order.legal_entity if order else customer.legal_entity,
            "currency": data["currency"],
            "subtotal": money(data.get("subtotal") or data["total"]),
            "tax": money(data.get("tax")),
            "total": money(data["total"]),
            "due_date": data.get("due_date") or None,
            "finalized_at": when(data.get("finalized_at")),
            "status": Invoice.Status.OPEN,
        },
    )
    return invoice


def customer_for_billing_id(billing_system: str, billing_customer_id: str | None) -> Customer | None:
    """The hub customer behind a billing platform's customer id, if the hub knows it."""
    if not billing_customer_id:
        return None
    customer_id = ref_canonical(system=billing_system, object_type="customer", external_id=billing_customer_id)
    return Customer.objects.select_related("legal_entity").filter(pk=customer_id).first() if customer_id else None
