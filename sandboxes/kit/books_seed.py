"""Consistent books in all three sandboxes at once, written straight into their tables (not
through the hub, not through their APIs): for reconciliation tests and benches at volume.

Customer i has, in every system, the same deal: a CRM account, a closed-won New order (monthly
seats, every fourth one an onboarding fee) with its activated contract; a Stripe customer, an
active subscription (metadata order_number) and its first invoice, paid; a NetSuite customer,
the sales order (tranId = order number) and the invoice (tranId = invoice number, created from
the sales order), paid. `doc(i)` says what each holds, so a test computes what it expects from
the scenario, not from the product.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import transaction

from sandboxes.db import DB
from sandboxes.netsuite.models import Record
from sandboxes.netsuite.seed import seed_catalog
from sandboxes.salesforce import simulate as sf_simulate
from sandboxes.salesforce.models import SRecord
from sandboxes.salesforce.schema import make_id
from sandboxes.salesforce.store import fmt_datetime
from sandboxes.stripe.models import StripeObject

CURRENCIES = ("USD", "EUR", "GBP")
NETSUITE_CURRENCY = {"USD": 1, "GBP": 2, "CAD": 3, "EUR": 4}
NETSUITE_SUBSIDIARY = {"USD": 1, "GBP": 2, "EUR": 3}
SEAT, FEE = Decimal("45.00"), Decimal("2500.00")
ID_BASE = 7_000_000  # Salesforce record numbers far above what the sandbox's own counters reach


@dataclass(frozen=True)
class Doc:
    i: int
    account: str
    currency: str
    seats: int
    fee: bool
    order_number: str
    invoice_number: str
    day: date

    @property
    def monthly(self) -> Decimal:
        return SEAT * self.seats

    @property
    def order_total(self) -> Decimal:
        return self.monthly + (FEE if self.fee else 0)

    @property
    def invoice_total(self) -> Decimal:
        return self.order_total

    @property
    def arr(self) -> Decimal:
        return self.monthly * 12


def doc(i: int, prefix: str = "RC", today: date | None = None) -> Doc:
    today = today or datetime.now(UTC).date()
    return Doc(
        i=i,
        account=f"Books {prefix} {i:06d} Ltd",
        currency=CURRENCIES[i % 3],
        seats=5 + (i * 7) % 40,
        fee=i % 4 == 0,
        order_number=f"{prefix}-{i:06d}",
        invoice_number=f"{prefix}I-{i:06d}",
        day=today - timedelta(days=10 + i % 20),
    )


def _minor(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def sf_ids(i: int) -> dict:
    n = ID_BASE + i
    return {
        "account": make_id("001", n),
        "contract": make_id("800", n),
        "order": make_id("801", n),
        "seat": make_id("802", 2 * n),
        "fee": make_id("802", 2 * n + 1),
    }


def stripe_ids(i: int, prefix: str = "RC") -> dict:
    return {"customer": f"cus_{prefix}{i:012d}", "subscription": f"sub_{prefix}{i:012d}", "item": f"si_{prefix}{i:012d}", "invoice": f"in_{prefix}{i:012d}"}


def _salesforce(docs: list[Doc], products: dict[str, str]) -> None:
    rows = []
    for d in docs:
        ids = sf_ids(d.i)
        moment = datetime.combine(d.day, datetime.min.time(), tzinfo=UTC)
        stamp = fmt_datetime(moment)
        common = {"CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp, "IsDeleted": False}

        def row(sobject: str, record_id: str, fields: dict, common=common, moment=moment) -> SRecord:
            return SRecord(id=record_id, sobject=sobject, fields={"Id": record_id, **common, **fields}, created_at=moment, modstamp=moment)

        rows.append(row("Account", ids["account"], {"Name": d.account, "Type": "Customer", "CurrencyIsoCode": d.currency}))
        rows.append(
            row(
                "Contract",
                ids["contract"],
                {
                    "AccountId": ids["account"],
                    "Status": "Activated",
                    "StartDate": d.day.isoformat(),
                    "ContractTerm": 12,
                    "CurrencyIsoCode": d.currency,
                    "SBQQ__Order__c": ids["order"],
                },
            )
        )
        rows.append(
            row(
                "Order",
                ids["order"],
                {
                    "OrderNumber": d.order_number,
                    "AccountId": ids["account"],
                    "ContractId": ids["contract"],
                    "EffectiveDate": d.day.isoformat(),
                    "Status": "Activated",
                    "Type": "New",
                    "CurrencyIsoCode": d.currency,
                    "TotalAmount": float(d.order_total),
                },
            )
        )
        rows.append(
            row(
                "OrderItem",
                ids["seat"],
                {
                    "OrderId": ids["order"],
                    "Product2Id": products["PLAT-SEAT"],
                    "Quantity": float(d.seats),
                    "UnitPrice": float(SEAT),
                    "TotalPrice": float(d.monthly),
                },
            )
        )
        if d.fee:
            rows.append(
                row(
                    "OrderItem",
                    ids["fee"],
                    {"OrderId": ids["order"], "Product2Id": products["ONBOARD-FEE"], "Quantity": 1.0, "UnitPrice": float(FEE), "TotalPrice": float(FEE)},
                )
            )
    SRecord.objects.using(DB).bulk_create(rows, batch_size=2000)


def _stripe(docs: list[Doc], prefix: str) -> None:
    rows = []
    for d in docs:
        ids = stripe_ids(d.i, prefix)
        created = int(datetime.combine(d.day, datetime.min.time(), tzinfo=UTC).timestamp())
        cur = d.currency.lower()
        rows.append(
            StripeObject(
                id=ids["customer"],
                object="customer",
                created=created,
                data={"id": ids["customer"], "object": "customer", "name": d.account, "created": created, "metadata": {}},
            )
        )
        item = {
            "id": ids["item"],
            "object": "subscription_item",
            "quantity": d.seats,
            "metadata": {"sku": "PLAT-SEAT"},
            "price": {
                "id": f"price_{prefix}seat{cur}",
                "object": "price",
                "type": "recurring",
                "currency": cur,
                "unit_amount": _minor(SEAT),
                "product": "PLAT-SEAT",
                "recurring": {"interval": "month", "interval_count": 1},
            },
        }
        sub = {
            "id": ids["subscription"],
            "object": "subscription",
            "customer": ids["customer"],
            "currency": cur,
            "status": "active",
            "created": created,
            "start_date": created,
            "cancel_at_period_end": False,
            "metadata": {"order_number": d.order_number},
            "items": {"object": "list", "data": [item]},
        }
        rows.append(StripeObject(id=ids["subscription"], object="subscription", created=created, customer=ids["customer"], data=sub))
        total = _minor(d.invoice_total)
        invoice = {
            "id": ids["invoice"],
            "object": "invoice",
            "number": d.invoice_number,
            "customer": ids["customer"],
            "currency": cur,
            "status": "paid",
            "total": total,
            "amount_due": total,
            "amount_paid": total,
            "amount_remaining": 0,
            "created": created,
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": ids["subscription"], "metadata": {"order_number": d.order_number}},
            },
            "status_transitions": {"finalized_at": created, "paid_at": created + 3600},
        }
        rows.append(
            StripeObject(id=ids["invoice"], object="invoice", created=created, customer=ids["customer"], subscription=ids["subscription"], data=invoice)
        )
    StripeObject.objects.using(DB).bulk_create(rows, batch_size=2000)


def _netsuite(docs: list[Doc]) -> None:
    now = datetime.now(UTC)
    customers = Record.objects.using(DB).bulk_create(
        [
            Record(
                record_type="customer",
                external_id=f"CUST-BOOKS-{d.order_number}",
                data={
                    "entityId": d.account,
                    "companyName": d.account,
                    "currency": {"id": str(NETSUITE_CURRENCY[d.currency])},
                    "subsidiary": {"id": str(NETSUITE_SUBSIDIARY[d.currency])},
                },
                created_at=now,
                last_modified=now,
            )
            for d in docs
        ]
    )
    orders = Record.objects.using(DB).bulk_create(
        [
            Record(
                record_type="salesOrder",
                external_id=f"SO-{d.order_number}",
                data={
                    "tranId": d.order_number,
                    "entity": {"id": str(c.id)},
                    "currency": {"id": str(NETSUITE_CURRENCY[d.currency])},
                    "subsidiary": {"id": str(NETSUITE_SUBSIDIARY[d.currency])},
                    "status": {"id": "B"},
                    "total": d.order_total,
                    "tranDate": d.day.isoformat(),
                },
                created_at=now,
                last_modified=now,
            )
            for d, c in zip(docs, customers, strict=True)
        ]
    )
    Record.objects.using(DB).bulk_create(
        [
            Record(
                record_type="invoice",
                external_id=f"INV-{d.invoice_number}",
                data={
                    "tranId": d.invoice_number,
                    "entity": {"id": str(c.id)},
                    "currency": {"id": str(NETSUITE_CURRENCY[d.currency])},
                    "subsidiary": {"id": str(NETSUITE_SUBSIDIARY[d.currency])},
                    "status": {"id": "B"},
                    "total": d.invoice_total,
                    "amountRemaining": Decimal("0.00"),
                    "tranDate": d.day.isoformat(),
                    "createdFrom": {"id": str(so.id)},
                },
                created_at=now,
                last_modified=now,
            )
            for d, c, so in zip(docs, customers, orders, strict=True)
        ]
    )


def seed_books(n: int, *, prefix: str = "RC", start: int = 0, batch: int = 2000, today: date | None = None) -> int:
    """Customers start … start+n-1 with their documents in all three sandboxes, `batch` at a time."""
    products = sf_simulate.ensure_catalogue()
    seed_catalog()
    for first in range(start, start + n, batch):
        docs = [doc(i, prefix, today) for i in range(first, min(start + n, first + batch))]
        with transaction.atomic(using=DB):
            _salesforce(docs, products)
            _stripe(docs, prefix)
            _netsuite(docs)
    return n
