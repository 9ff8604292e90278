"""Readers: every system through its connector, page by page, into the run's snapshot.

Each reader yields `Record`s; nothing is read from the hub's own copy. Pages follow each API's
own paging (SOQL nextRecordsUrl, Stripe `starting_after`, SuiteQL offset/hasMore), so memory
holds one page at a time. The reader for a role is the one of the system playing it
(settings.CONNECTOR_ROLES), so a new CRM/billing/ERP needs a reader here beside its connector.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sync.canonical import charges
from sync.connectors import registry
from sync.connectors.netsuite import mapper as ns_mapper
from sync.connectors.salesforce import mapper as sf_mapper
from sync.connectors.stripe import mapper as stripe_mapper

log = logging.getLogger(__name__)

STRIPE_PAGE = 100  # Stripe's maximum
ERP_CHANGE_PREFIXES = ("CO-", "RN-")  # the hub's change orders (amendments, renewals): not an order of their own
ENDED_CONTRACT = {"terminated", "expired", "cancelled", "canceled"}
ENDED_SUBSCRIPTION = {"canceled", "incomplete_expired"}


@dataclass(slots=True)
class Record:
    role: str
    kind: str  # order, change, renewal, line, invoice
    key: str
    deal_id: str = ""
    ref: str = ""
    parent_ref: str = ""
    account_ref: str = ""
    account_name: str = ""
    currency: str = ""
    amount: Decimal | None = None
    arr: Decimal | None = None
    paid: Decimal | None = None
    status: str = ""
    doc_date: date | None = None
    changed_at: datetime | None = None


Progress = Callable[[int], None]


def _dec(value) -> Decimal | None:
    if value in (None, ""):
        return None
    return Decimal(str(value))


def _date(value) -> date | None:
    """ISO (2026-11-30, 2026-11-30T…) or NetSuite's M/D/YYYY."""
    if not value:
        return None
    text = str(value)
    if "/" in text:
        month, day, year = (int(p) for p in text.split("/")[:3])
        return date(year, month, day)
    return date.fromisoformat(text[:10])


def _datetime(value) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = sf_mapper.parse_datetime(str(value))
        except Exception:  # noqa: BLE001 — an unreadable time only disables the grace window for the record
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- CRM: Salesforce ----------------------------------------------------------------------------
# flat queries, no relationship fields: the contract and account each once, joined in SQL later
# (sync/reconciliation/snapshot.derive) — per-row parent lookups are what make a large SOQL slow
ORDER_SOQL = "SELECT Id, OrderNumber, Type, Status, AccountId, ContractId, CurrencyIsoCode, TotalAmount, EffectiveDate, CreatedDate FROM Order"
CONTRACT_SOQL = "SELECT Id, Status, SBQQ__Order__c FROM Contract"
ACCOUNT_SOQL = "SELECT Id, Name FROM Account"
LINE_SOQL = "SELECT Id, OrderId, Quantity, UnitPrice, Product2Id FROM OrderItem"
PRODUCT_SOQL = "SELECT Id, ProductCode, Name, SBQQ__ChargeType__c, SBQQ__BillingFrequency__c FROM Product2"


def line_arr(item: dict) -> Decimal:
    """A CRM order product's annual value (recurring only; one-time, usage or unmapped: 0)."""
    try:
        line = sf_mapper.line_of(item)
        charge = charges.charge_of(line)
    except Exception:  # noqa: BLE001 — a product the hub cannot map is the flows' exception, not a reconciliation one
        return Decimal(0)
    return charges.line_amount(line) * charge.per_year


class SalesforceReader:
    def __init__(self, connector: Any):
        self.connector = connector

    def read(self, progress: Progress) -> Iterator[Record]:
        count = 0

        def tick() -> None:
            nonlocal count
            count += 1
            if count % 500 == 0:
                progress(count)

        for row in self.connector.query(ACCOUNT_SOQL):
            yield Record(role="crm", kind="account", key=row["Id"], ref=row["Id"], account_name=row.get("Name") or "")
            tick()
        for row in self.connector.query(CONTRACT_SOQL):
            status = "ended" if str(row.get("Status") or "").lower() in ENDED_CONTRACT else "live"
            yield Record(role="crm", kind="contract", key=row["Id"], ref=row["Id"], parent_ref=row.get("SBQQ__Order__c") or "", status=status)
            tick()
        for row in self.connector.query(ORDER_SOQL):
            kind = {"Amendment": "change", "Renewal": "renewal"}.get(row.get("Type") or "New", "order")
            number = row.get("OrderNumber") or row["Id"]
            yield Record(
                role="crm",
                kind=kind,
                key=number,
                deal_id=number if kind == "order" else "",  # a change's deal: its contract's original order (derive)
                ref=row["Id"],
                parent_ref=row.get("ContractId") or "",
                account_ref=row.get("AccountId") or "",
                currency=(row.get("CurrencyIsoCode") or "").upper(),
                amount=_dec(row.get("TotalAmount")),
                status="live",  # the contract's status replaces it (derive)
                doc_date=_date(row.get("EffectiveDate")),
                changed_at=_datetime(row.get("CreatedDate")),
            )
            tick()
        products = {row["Id"]: row for row in self.connector.query(PRODUCT_SOQL)}  # the catalogue: small
        for row in self.connector.query(LINE_SOQL):
            item = {**row, "Product2": products.get(row.get("Product2Id")) or {}}
            yield Record(role="crm", kind="line", key=row["Id"], ref=row["Id"], parent_ref=row.get("OrderId") or "", arr=line_arr(item))
            tick()
        progress(count)


# --- billing: Stripe ----------------------------------------------------------------------------
class StripeReader:
    def __init__(self, connector: Any):
        self.connector = connector

    def _pages(self, operation: str, path: str, params: dict) -> Iterator[dict]:
        """A list endpoint page by page (starting_after), as the JSON Stripe sent: the client's
        raw_request (same transport, auth, API version and call records) without building a
        StripeObject per nested object, which costs more than the request itself at volume."""
        after = None
        while True:
            query = {**params, "limit": STRIPE_PAGE, **({"starting_after": after} if after else {})}
            body = self.connector.call(operation, self.connector.client.raw_request, "get", path, **query).data
            data = body.get("data") or []
            yield from data
            if not body.get("has_more") or not data:
                return
            after = data[-1]["id"]

    def read(self, progress: Progress) -> Iterator[Record]:
        count = 0
        for sub in self._pages("subscriptions.list", "/v1/subscriptions", {"status": "all"}):
            currency = (sub.get("currency") or "usd").upper()
            try:
                arr = stripe_mapper.subscription_arr(stripe_mapper.items_of(sub), currency)
            except Exception:  # noqa: BLE001 — an item whose price says nothing: ARR unknown, not compared
                arr = None
            number = (sub.get("metadata") or {}).get("order_number") or ""
            ended = sub.get("status") in ENDED_SUBSCRIPTION or bool(sub.get("cancel_at_period_end"))
            yield Record(
                role="billing",
                kind="order",
                key=number or f"(no order) {sub['id']}",
                deal_id=number,
                ref=sub["id"],
                account_ref=sub.get("customer") if isinstance(sub.get("customer"), str) else "",
                currency=currency,
                arr=arr,
                status="ended" if ended else "live",
                doc_date=_date(stripe_mapper.ts_to_iso(sub.get("start_date") or sub.get("created"))),
                changed_at=_datetime(stripe_mapper.ts_to_iso(sub.get("created"))),
            )
            count += 1
            if count % 500 == 0:
                progress(count)
        for raw in self._pages("invoices.list", "/v1/invoices", {}):
            if raw.get("status") == "draft" or not raw.get("number"):
                continue  # not issued yet: nothing to post
            invoice = stripe_mapper.invoice_to_canonical(raw)
            status = {"uncollectible": "open"}.get(invoice["status"], invoice["status"])
            yield Record(
                role="billing",
                kind="invoice",
                key=invoice["number"],
                deal_id=invoice.get("order_number") or "",
                ref=invoice["id"],
                parent_ref=invoice.get("subscription_id") or "",
                account_ref=invoice.get("customer_id") or "",
                currency=invoice["currency"],
                amount=_dec(invoice["total"]),
                paid=_dec(invoice["amount_paid"]),
                status=status,
                doc_date=_date(invoice.get("finalized_at")),
                changed_at=_datetime(invoice.get("finalized_at")),
            )
            count += 1
            if count % 500 == 0:
                progress(count)
        progress(count)


# --- ERP: NetSuite ------------------------------------------------------------------------------
ERP_SUITEQL = (
    "SELECT id, tranid, externalid, type, status, foreigntotal, foreignamountremaining, currency, entity, trandate, createdfrom, "
    "TO_CHAR(createddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS createdat FROM transaction WHERE type IN ('SalesOrd', 'CustInvc') ORDER BY id"
)


class NetSuiteReader:
    def __init__(self, connector: Any):
        self.connector = connector

    def read(self, progress: Progress) -> Iterator[Record]:
        count = 0
        for row in self.connector.query(q=ERP_SUITEQL):
            external_id = row.get("externalid") or ""
            currency = self.connector.currency_code(row.get("currency")) or ""
            total = _dec(row.get("foreigntotal"))
            status_id = str(row.get("status") or "")
            common = {
                "role": "erp",
                "ref": str(row["id"]),
                "account_ref": str(row.get("entity") or ""),
                "currency": currency,
                "amount": total,
                "doc_date": _date(row.get("trandate")),
                "changed_at": _datetime(f"{row['createdat']}Z" if row.get("createdat") else None),
            }
            if row.get("type") == "SalesOrd":
                if external_id.startswith(ERP_CHANGE_PREFIXES):
                    continue
                number = row.get("tranid") or f"(no number) {row['id']}"
                status = ns_mapper.SALES_ORDER_STATUS.get(status_id, status_id.lower())
                yield Record(kind="order", key=number, deal_id=row.get("tranid") or "", status=status, **common)
            else:
                remaining = _dec(row.get("foreignamountremaining"))
                paid = (total - remaining) if total is not None and remaining is not None else Decimal(0)
                status = ns_mapper.INVOICE_STATUS.get(status_id, status_id.lower())
                yield Record(
                    kind="invoice",
                    key=row.get("tranid") or f"(no number) {row['id']}",
                    parent_ref=str(row.get("createdfrom") or ""),
                    paid=paid,
                    status=status,
                    **common,
                )
            count += 1
            if count % 500 == 0:
                progress(count)
        progress(count)


READERS = {"salesforce": SalesforceReader, "stripe": StripeReader, "netsuite": NetSuiteReader}


def reader_for(role: str):
    system = registry.system_of(role)
    if system not in READERS:
        raise LookupError(f"no reconciliation reader for {system} (role {role})")
    return system, READERS[system](registry.get_connector(system))
