"""Hub-side writes of canonical objects and their cross-system references."""

from __future__ import annotations

import re
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Max, Sum
from django.utils import timezone

from sync.models import CreditMemo, Customer, ExternalRef, Invoice, InvoiceLine, LegalEntity, Order, OrderLine, Payment, Product, Subscription

from .charges import ChargeError, charge_of, first_year_value
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


def _charge_or_blank(line: dict, index: int):
    try:
        return charge_of(line, index)
    except ChargeError:
        return None


def order_upsert(*, source: str, data: dict, customer: Customer, entity: LegalEntity | None) -> Order:
    """The hub's order with its lines and their charge types (validate checked them first)."""
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
    rows = []
    for i, line in enumerate(data["lines"]):
        charge = _charge_or_blank(line, i)
        defaults = {"name": (line.get("description") or line["sku"])[:255]}
        if charge:
            defaults.update(charge_type=charge.charge_type, interval=charge.interval, interval_count=charge.interval_count)
        product, created = Product.objects.get_or_create(sku=line["sku"], defaults=defaults)
        if (
            charge
            and not created
            and (product.charge_type, product.interval, product.interval_count) != (charge.charge_type, charge.interval, charge.interval_count)
        ):
            Product.objects.filter(pk=product.pk).update(charge_type=charge.charge_type, interval=charge.interval, interval_count=charge.interval_count)
        rows.append(
            OrderLine(
                order=order,
                sku=line["sku"],
                description=line.get("description", "")[:255],
                quantity=Decimal(str(line["quantity"])),
                unit_price=money(line["unit_price"]),
                amount=money(line["unit_price"]) * Decimal(str(line["quantity"])),
                product=product,
                charge_type=charge.charge_type if charge else "",
                interval=charge.interval if charge else "",
                interval_count=charge.interval_count if charge else 1,
            )
        )
    OrderLine.objects.bulk_create(rows)
    if data.get("crm_record_id"):
        ref_set(system=source, object_type="Order", external_id=data["crm_record_id"], canonical_type="order", canonical_id=order.pk)
    return order


def order_first_year_value(data: dict) -> Decimal:
    return first_year_value(data.get("lines") or [])


def subscription_for_invoice(*, billing_system: str, data: dict, order: Order | None) -> Subscription | None:
    """The hub subscription an invoice bills: by the billing platform's subscription id, else the order's."""
    if data.get("billing_subscription_id"):
        sub_id = ref_canonical(system=billing_system, object_type="subscription", external_id=data["billing_subscription_id"])
        if sub_id:
            return Subscription.objects.filter(pk=sub_id).first()
    if order is not None:
        return Subscription.objects.filter(order=order).order_by("created_at").first()
    return None


def invoice_upsert(*, data: dict, customer: Customer, order: Order | None, subscription: Subscription | None = None) -> Invoice:
    defaults = {
        "customer": customer,
        "legal_entity": order.legal_entity if order else customer.legal_entity,
        "currency": data["currency"],
        "subtotal": money(data.get("subtotal") or data["total"]),
        "tax": money(data.get("tax")),
        "total": money(data["total"]),
        "due_date": data.get("due_date") or None,
        "finalized_at": when(data.get("finalized_at")),
    }
    if subscription is not None:
        defaults["subscription"] = subscription
    invoice, created = Invoice.objects.update_or_create(
        number=data["invoice_number"], defaults=defaults, create_defaults={**defaults, "status": Invoice.Status.OPEN}
    )
    invoice.lines.all().delete()
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            sku=(line.get("sku") or "")[:64],
            description=(line.get("description") or "")[:255],
            quantity=Decimal(str(line.get("quantity") or "1")),
            unit_amount=money(line.get("unit_amount")) if line.get("unit_amount") not in (None, "") else Decimal(0),
            amount=money(line["amount"]),
            charge_type=line.get("charge_type") or "",
        )
        for line in data.get("lines") or []
    )
    return refresh_payment_state(invoice.pk)


def refresh_payment_state(invoice_id) -> Invoice:
    """Recompute what was credited, paid and remains on an invoice, and its payment state
    (docs/MONEY.md): open, partially paid, paid or overpaid. Locks the invoice row, so two
    payments arriving at once both count."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        credited = CreditMemo.objects.filter(invoice_id=invoice_id).aggregate(s=Sum("amount"))["s"] or Decimal(0)
        received = Payment.objects.filter(invoice_id=invoice_id, status=Payment.Status.RECEIVED).aggregate(s=Sum("amount"), last=Max("occurred_at"))
        paid = received["s"] or Decimal(0)
        due = invoice.total - credited
        if invoice.status in (Invoice.Status.VOID, Invoice.Status.DRAFT):
            status = invoice.status
        elif paid > due:
            status = Invoice.Status.OVERPAID
        elif paid == due:
            status = Invoice.Status.PAID
        elif paid > 0:
            status = Invoice.Status.PARTIALLY_PAID
        elif invoice.status == Invoice.Status.UNCOLLECTIBLE:
            status = invoice.status
        else:
            status = Invoice.Status.OPEN
        fields = {
            "amount_credited": credited,
            "amount_paid": paid,
            "amount_remaining": max(due - paid, Decimal(0)),
            "status": status,
            "paid_at": (received["last"] or timezone.now()) if status in (Invoice.Status.PAID, Invoice.Status.OVERPAID) else None,
        }
        Invoice.objects.filter(pk=invoice_id).update(**fields)
        for name, value in fields.items():
            setattr(invoice, name, value)
    return invoice


def customer_for_billing_id(billing_system: str, billing_customer_id: str | None) -> Customer | None:
    """The hub customer behind a billing platform's customer id, if the hub knows it."""
    if not billing_customer_id:
        return None
    customer_id = ref_canonical(system=billing_system, object_type="customer", external_id=billing_customer_id)
    return Customer.objects.select_related("legal_entity").filter(pk=customer_id).first() if customer_id else None
