"""Canonical data ↔ Business Central API v2.0 bodies. Pure functions: no HTTP, no database.

Field names follow the API v2.0 resources (customers, salesOrders + salesOrderLines,
salesInvoices + salesInvoiceLines, salesCreditMemos + salesCreditMemoLines, customerPayments).
Amounts are JSON numbers, written from Decimal without passing through float (`wire`).

Keys. Business Central has no external-id field and no idempotency key, so the hub's key of a
record is written into a field BC keeps and that a `$filter` finds again:
- a customer: `number` (Code[20], the customer No.; the customer No. Series must allow manual
  numbers: "Manual Nos." on the series, a setup step of the BC company);
- sales orders, invoices, credit memos: `externalDocumentNumber` (Code[35]);
- a customer payment: `documentNumber` (Code[20]) — it is what the posted G/L entries keep —
  and `externalDocumentNumber`.
BC upper-cases Code fields, so a key with lower-case letters, or one longer than the field,
would collide or be cut; `bc_code` then writes its upper-cased head plus `~` and 8 base32
characters of its SHA-256, which is stable and distinct for distinct keys.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

from sync.connectors import values
from sync.connectors.values import CENT, MappingError, to_date, to_decimal
from sync.connectors.values import compact as _compact

UNIT_PRICE_PLACES = Decimal("0.00001")  # BC keeps unit prices to 5 decimals
BLANK_DATE = "0001-01-01"  # how BC answers an empty date
CUSTOMER_NUMBER_LENGTH = 20
EXTERNAL_DOCUMENT_NUMBER_LENGTH = 35
DOCUMENT_NUMBER_LENGTH = 20
DISPLAY_NAME_LENGTH = 100
DESCRIPTION_LENGTH = 100

# BC status words → canonical words
SALES_ORDER_STATUS = {"Draft": "open", "In Review": "pending_approval", "Open": "open", "Released": "open"}
INVOICE_STATUS = {"Draft": "draft", "In Review": "draft", "Open": "open", "Paid": "paid", "Canceled": "void", "Corrective": "void"}
POSTED_INVOICE_STATUSES = frozenset({"Open", "Paid", "Canceled", "Corrective"})
CREDIT_MEMO_STATUS = {"Draft": "draft", "In Review": "draft", "Open": "open", "Paid": "applied", "Canceled": "void", "Corrective": "void"}


# --- keys ---------------------------------------------------------------------------------------
def bc_code(value: str, max_length: int) -> str:
    """`value` as a Business Central Code field keeps it: itself when it is upper-case and fits,
    else its upper-cased head + "~" + 8 base32 characters of its SHA-256 (stable, collision-safe)."""
    value = str(value or "")
    if not value:
        raise MappingError("A key is required", "external_id")
    if value == value.upper() and len(value) <= max_length:
        return value
    digest = base64.b32encode(hashlib.sha256(value.encode()).digest()).decode()[:8]
    return f"{value.upper()[: max_length - 9]}~{digest}"


def customer_number(external_id: str) -> str:
    return bc_code(external_id, CUSTOMER_NUMBER_LENGTH)


def external_document_number(external_id: str) -> str:
    return bc_code(external_id, EXTERNAL_DOCUMENT_NUMBER_LENGTH)


def document_number(external_id: str) -> str:
    return bc_code(external_id, DOCUMENT_NUMBER_LENGTH)


def odata_string(value) -> str:
    """An OData string literal ('…' with quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def eq_filter(field: str, value) -> str:
    return f"{field} eq {odata_string(value)}"


def any_of(field: str, values: Iterable[str]) -> str:
    """`field eq 'a' or field eq 'b' …` (API v2.0 has no `in`)."""
    return " or ".join(eq_filter(field, v) for v in values)


# --- values ----------------------------------------------------------------------------------------
def money_str(value) -> str:
    """A BC number → canonical decimal string (an absent one is 0)."""
    return values.money_str(value if value is not None else 0)


def quantity_str(value) -> str:
    """A BC quantity → canonical string (an absent one is 1)."""
    return values.quantity_str(value if value is not None else 1)


def from_date(value) -> str | None:
    return None if value in (None, "", BLANK_DATE) else str(value)


def _text(value, length: int) -> str | None:
    return str(value)[:length] if value not in (None, "") else None


# --- customers -----------------------------------------------------------------------------------
def flat_customer(customer: Mapping) -> dict:
    """The flat hub shape {hub_id, name, email, tax_id, currency, legal_entity, …} or
    customer.upserted.v1 data {account: {external_id, name, email, tax_id}, currency, legal_entity}."""
    account = customer.get("account") or {}
    return {
        "name": customer.get("name") or account.get("name"),
        "email": customer.get("email") or account.get("email"),
        "tax_id": customer.get("tax_id") or account.get("tax_id"),
        "currency": customer.get("currency"),
        "legal_entity": customer.get("legal_entity"),
        "erp_subsidiary_id": customer.get("erp_subsidiary_id"),
        "crm_account_id": customer.get("crm_account_id") or account.get("external_id"),
    }


def customer_body(customer: Mapping, *, number: str, currency_code: str | None) -> dict:
    flat = flat_customer(customer)
    if not flat["name"]:
        raise MappingError("The customer has no name", "name")
    return _compact(
        {
            "number": number,
            "displayName": flat["name"][:DISPLAY_NAME_LENGTH],
            "type": "Company",
            "email": _text(flat["email"], 80),
            "taxRegistrationNumber": _text(flat["tax_id"], 20),
            "currencyCode": currency_code,
        }
    )


def customer_from_bc(record: Mapping, *, external_id: str | None = None) -> dict:
    return _compact(
        {
            "id": str(record.get("id", "")),
            "external_id": external_id,
            "number": record.get("number"),
            "name": record.get("displayName"),
            "email": record.get("email"),
            "tax_id": record.get("taxRegistrationNumber"),
            "currency": record.get("currencyCode"),
            "blocked": record.get("blocked") if (record.get("blocked") or "").strip() else None,
        }
    )


# --- document lines --------------------------------------------------------------------------------
def item_line(line: Mapping, *, index: int, prefix: str = "lines") -> dict:
    """A canonical order line {sku, quantity, unit_price, description} → a document line on the item
    whose number is the SKU."""
    quantity = to_decimal(line.get("quantity", "1"), f"{prefix}[{index}].quantity")
    price = to_decimal(line.get("unit_price"), f"{prefix}[{index}].unit_price")
    return _compact(
        {
            "lineType": "Item",
            "lineObjectNumber": line["sku"],
            "description": _text(line.get("description"), DESCRIPTION_LENGTH),
            "quantity": quantity,
            "unitPrice": price,
        }
    )


def billed_line(line: Mapping, *, index: int) -> dict:
    """An invoice / credit memo line as billing computed it {sku, quantity, unit_amount, amount}.
    BC computes a line amount as quantity × unit price − discount, so billing's amount is kept by a
    line discount where it is less (proration), or by the unit price where it divides exactly."""
    quantity = to_decimal(line.get("quantity") or "1", f"lines[{index}].quantity")
    amount = to_decimal(line["amount"], f"lines[{index}].amount")
    if line.get("unit_amount") not in (None, ""):
        price = to_decimal(line["unit_amount"], f"lines[{index}].unit_amount")
    elif quantity:
        price = (amount / quantity).quantize(UNIT_PRICE_PLACES, ROUND_HALF_UP)
    else:
        raise MappingError(f"Line {index + 1} has quantity 0 and no unit amount", f"lines[{index}].quantity")
    gross = (quantity * price).quantize(CENT, ROUND_HALF_UP)
    discount = Decimal(0)
    if gross > amount:
        discount = gross - amount
    elif gross < amount:
        price = (amount / quantity).quantize(UNIT_PRICE_PLACES, ROUND_HALF_UP) if quantity else price
        if (quantity * price).quantize(CENT, ROUND_HALF_UP) != amount:
            raise MappingError(f"Line {index + 1}: {quantity} × a unit price cannot make {money_str(amount)} in Business Central", f"lines[{index}].amount")
    body = {
        "lineType": "Item",
        "lineObjectNumber": line["sku"],
        "description": _text(line.get("description"), DESCRIPTION_LENGTH),
        "quantity": quantity,
        "unitPrice": price,
    }
    if discount:
        body["discountAmount"] = discount
    return _compact(body)


def tax_line(tax: Decimal, *, tax_item: str) -> dict:
    """Billing's tax as one line on the tax item, so the BC total is the billing total."""
    return {"lineType": "Item", "lineObjectNumber": tax_item, "description": "Tax calculated by billing", "quantity": Decimal(1), "unitPrice": tax}


LINE_FIELDS = ("lineType", "lineObjectNumber", "description", "quantity", "unitPrice", "discountAmount")


def _line_key(line: Mapping) -> tuple:
    def number(name: str) -> Decimal:
        return to_decimal(line.get(name) if line.get(name) not in (None, "") else 0)

    return (
        str(line.get("lineType") or "Item"),
        str(line.get("lineObjectNumber") or "").upper(),
        number("quantity").normalize(),
        number("unitPrice").normalize(),
        number("discountAmount").normalize(),
    )


def same_lines(existing: Iterable[Mapping], wanted: Iterable[Mapping]) -> bool:
    """Do the document's lines already say what the hub would write? (A line the hub writes without
    a description gets the item's from BC; that is not a difference.)"""
    existing, wanted = list(existing), list(wanted)
    return len(existing) == len(wanted) and all(
        _line_key(have) == _line_key(want) and (not want.get("description") or have.get("description") == want["description"])
        for have, want in zip(existing, wanted)
    )


def canonical_lines(lines: Iterable[Mapping], *, price_key: str) -> list[dict]:
    """BC document lines → canonical lines (orders call the price unit_price, invoices unit_amount)."""
    return [
        _compact(
            {
                "sku": line.get("lineObjectNumber"),
                "description": line.get("description"),
                "quantity": quantity_str(line.get("quantity", 1)),
                price_key: money_str(line["unitPrice"]) if line.get("unitPrice") is not None else None,
                "amount": money_str(line.get("amountExcludingTax", line.get("netAmount", 0))),
            }
        )
        for line in lines
    ]


# --- sales orders ------------------------------------------------------------------------------------
def sales_order_body(order: Mapping, *, customer_id: str, external_document_number: str, currency_code: str) -> dict:
    """order.closed_won.v1 data → salesOrder header (its lines: `sales_order_lines`)."""
    when = order.get("effective_date") or order.get("closed_won_at")
    return _compact(
        {
            "externalDocumentNumber": external_document_number,
            "customerId": customer_id,
            "orderDate": to_date(when, "effective_date") if when else None,
            "currencyCode": currency_code,
        }
    )


def sales_order_lines(order: Mapping) -> list[dict]:
    lines = [item_line(line, index=i) for i, line in enumerate(order.get("lines") or [])]
    if not lines:
        raise MappingError("The order has no lines", "lines")
    return lines


def change_order_lines(change: Mapping, *, original_lines: Iterable[Mapping]) -> list[dict]:
    """subscription.amended.v1 → the changed lines; subscription.renewed.v1 → the original order's
    lines again, for the new term."""
    if change.get("changes"):
        lines = [item_line(line, index=i, prefix="changes") for i, line in enumerate(change["changes"])]
    else:
        lines = [
            _compact({name: line.get(name) for name in LINE_FIELDS if name != "discountAmount" or line.get(name)})
            for line in original_lines
            if line.get("lineType", "Item") != "Comment"
        ]
    if not lines:
        raise MappingError("The change has no lines", "changes")
    return lines


def change_order_body(change: Mapping, *, original: Mapping, customer_id: str, external_document_number: str, currency_code: str | None) -> dict:
    when = change.get("effective_date") or change.get("requested_at") or change.get("due_at")
    return _compact(
        {
            "externalDocumentNumber": external_document_number,
            "customerId": customer_id,
            "orderDate": to_date(when) if when else None,
            "currencyCode": currency_code or original.get("currencyCode"),
        }
    )


def sales_order_from_bc(record: Mapping, lines: Iterable[Mapping], *, external_id: str | None = None) -> dict:
    status = str(record.get("status") or "")
    return _compact(
        {
            "id": str(record.get("id", "")),
            "external_id": external_id,
            "order_number": record.get("number"),
            "status": SALES_ORDER_STATUS.get(status, status.lower() or "open"),
            "erp_status": status,
            "total": money_str(record.get("totalAmountIncludingTax", 0)),
            "currency": record.get("currencyCode"),
            "effective_date": from_date(record.get("orderDate")),
            "customer_id": record.get("customerId"),
            "lines": canonical_lines(lines, price_key="unit_price"),
        }
    )


# --- invoices ----------------------------------------------------------------------------------------
def invoice_body(invoice: Mapping, *, customer_id: str, external_document_number: str, currency_code: str) -> dict:
    """invoice.finalized.v1 data → salesInvoice header (a draft; posting it is a bound action)."""
    invoice_date = to_date(invoice["finalized_at"], "finalized_at")
    return _compact(
        {
            "externalDocumentNumber": external_document_number,
            "customerId": customer_id,
            "invoiceDate": invoice_date,
            "postingDate": invoice_date,
            "dueDate": to_date(invoice["due_date"], "due_date") if invoice.get("due_date") else None,
            "currencyCode": currency_code,
            "customerPurchaseOrderReference": _text(invoice.get("billing_invoice_id"), 35),
        }
    )


def invoice_lines(invoice: Mapping, *, tax_item: str | None) -> list[dict]:
    lines = [billed_line(line, index=i) for i, line in enumerate(invoice.get("lines") or [])]
    if not lines:
        raise MappingError("The invoice has no lines", "lines")
    tax = to_decimal(invoice.get("tax") or "0", "tax")
    if tax:
        if not tax_item:
            raise MappingError(f"The invoice carries tax {money_str(tax)} but no Business Central tax item is configured (BUSINESS_CENTRAL_TAX_ITEM)", "tax")
        lines.append(tax_line(tax, tax_item=tax_item))
    return lines


def invoice_from_bc(record: Mapping, lines: Iterable[Mapping], *, external_id: str | None = None) -> dict:
    status = str(record.get("status") or "")
    return _compact(
        {
            "erp_invoice_id": str(record.get("id", "")),
            "external_id": external_id,
            "invoice_number": record.get("number"),
            "status": INVOICE_STATUS.get(status, status.lower()),
            "erp_status": status,
            "posted": status in POSTED_INVOICE_STATUSES,
            "currency": record.get("currencyCode"),
            "total": money_str(record.get("totalAmountIncludingTax", 0)),
            "amount_remaining": money_str(record["remainingAmount"]) if record.get("remainingAmount") is not None else None,
            "invoice_date": from_date(record.get("invoiceDate")),
            "due_date": from_date(record.get("dueDate")),
            "billing_invoice_id": record.get("customerPurchaseOrderReference"),
            "lines": canonical_lines(lines, price_key="unit_amount"),
        }
    )


# --- payments ------------------------------------------------------------------------------------------
def payment_body(payment: Mapping, *, customer_id: str, invoice_id: str | None, document_number: str, external_document_number: str) -> dict:
    """payment.received.v1 data → a customerPayment journal line. A payment credits the customer, so
    the journal line's amount is negative (as the Cash Receipt Journal's Credit Amount makes it);
    with an invoice, BC applies it to that invoice when the journal is posted."""
    amount = to_decimal(payment["amount"], "amount")
    if amount <= 0:
        raise MappingError(f"A payment of {money_str(amount)} cannot be posted as a customer payment", "amount")
    description = f"Payment {payment.get('payment_id', '')} for invoice {payment.get('invoice_number', '')}".strip()
    return _compact(
        {
            "customerId": customer_id,
            "postingDate": to_date(payment.get("received_at") or payment.get("failed_at"), "received_at"),
            "documentNumber": document_number,
            "externalDocumentNumber": external_document_number,
            "amount": -amount.quantize(CENT, ROUND_HALF_UP),
            "appliesToInvoiceId": invoice_id,
            "description": description[:DESCRIPTION_LENGTH],
        }
    )


def payment_from_gl_entries(entries: list[Mapping], *, document_number: str) -> dict:
    """A posted payment as its G/L entries show it (the journal line is gone once posted)."""
    amount = sum((to_decimal(e.get("debitAmount") or 0) for e in entries), Decimal(0))
    return {
        "id": document_number,
        "document_number": document_number,
        "posted": True,
        "amount": money_str(amount),
        "received_on": from_date(entries[0].get("postingDate")) if entries else None,
    }


# --- credit memos --------------------------------------------------------------------------------------
def credit_memo_body(credit_memo: Mapping, *, customer_id: str, external_document_number: str, currency_code: str, invoice_id: str | None) -> dict:
    memo_date = to_date(credit_memo["issued_at"], "issued_at")
    return _compact(
        {
            "externalDocumentNumber": external_document_number,
            "customerId": customer_id,
            "creditMemoDate": memo_date,
            "postingDate": memo_date,
            "currencyCode": currency_code,
            "invoiceId": invoice_id,
        }
    )


def credit_memo_lines(credit_memo: Mapping, *, adjustment_item: str) -> list[dict]:
    """Its lines; without lines, one line for the amount on the adjustment item."""
    if credit_memo.get("lines"):
        return [item_line(line, index=i) for i, line in enumerate(credit_memo["lines"])]
    amount = to_decimal(credit_memo["amount"], "amount")
    description = credit_memo.get("reason") or f"Credit {credit_memo.get('credit_memo_number', '')}"
    return [
        {"lineType": "Item", "lineObjectNumber": adjustment_item, "description": description[:DESCRIPTION_LENGTH], "quantity": Decimal(1), "unitPrice": amount}
    ]


def credit_memo_from_bc(record: Mapping, *, external_id: str | None = None) -> dict:
    status = str(record.get("status") or "")
    return _compact(
        {
            "id": str(record.get("id", "")),
            "external_id": external_id,
            "credit_memo_number": record.get("number"),
            "status": CREDIT_MEMO_STATUS.get(status, status.lower()),
            "erp_status": status,
            "posted": status not in ("Draft", "In Review", ""),
            "amount": money_str(record.get("totalAmountIncludingTax", 0)),
            "currency": record.get("currencyCode"),
            "issued_on": from_date(record.get("creditMemoDate")),
            "erp_invoice_id": record.get("invoiceId") if record.get("invoiceId") not in (None, "", "00000000-0000-0000-0000-000000000000") else None,
        }
    )
