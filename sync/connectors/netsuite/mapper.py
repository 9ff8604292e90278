"""Canonical data ↔ NetSuite REST record bodies. Pure functions: no HTTP, no database.

Canonical money is a decimal string ("1200.00") with an ISO 4217 code; NetSuite takes
amounts as JSON numbers, which `wire` writes from Decimal without passing through float.
References are {"id": "<internal id>"}; the client resolves SKUs, currencies, subsidiaries
and customers to internal ids first and hands them in, so every function here is pure.

Field names follow the REST Record Service (salesOrder, invoice, customerPayment,
creditMemo, customer). ASSUMPTIONS where the docs leave it open (API_REFERENCE.md [U]):
customer tax number in `vatRegNumber`; customerPayment applies to invoices through the
`apply` sublist with {doc, apply, amount}; a change order (amendment) and a renewal are new
sales orders whose memo names the original order.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

from sync.canonical.charges import stated_charge_type
from sync.connectors.values import CENT, MappingError, money_str, quantity_str, to_date, to_decimal
from sync.connectors.values import compact as _compact

# NetSuite status ids → canonical words
SALES_ORDER_STATUS = {"A": "pending_approval", "B": "open", "C": "cancelled", "D": "open", "E": "open", "F": "open", "G": "billed", "H": "closed"}
INVOICE_STATUS = {"A": "open", "B": "paid", "V": "void"}


def line_amount(quantity, unit_price) -> Decimal:
    """Quantity × price rounded to cents, as NetSuite stores a line amount."""
    return (to_decimal(quantity, "quantity") * to_decimal(unit_price, "unit_price")).quantize(CENT, ROUND_HALF_UP)


def ref(internal_id) -> dict:
    return {"id": str(internal_id)}


def ref_id(value) -> str | None:
    if isinstance(value, Mapping):
        return str(value["id"]) if value.get("id") not in (None, "") else None
    return str(value) if value not in (None, "") else None


def _lines(record: Mapping, sublist: str = "item") -> list[dict]:
    block = record.get(sublist) or {}
    return list(block.get("items", [])) if isinstance(block, Mapping) else []


# --- customer ---------------------------------------------------------------------------------
def flat_customer(customer: Mapping) -> dict:
    """Accept either the flat hub shape {hub_id, name, email, tax_id, currency, legal_entity, …}
    or customer.upserted.v1 data {account: {external_id, name, email, tax_id}, currency, legal_entity}."""
    account = customer.get("account") or {}
    return {
        "name": customer.get("name") or account.get("name"),
        "email": customer.get("email") or account.get("email"),
        "tax_id": customer.get("tax_id") or account.get("tax_id"),
        "currency": customer.get("currency"),
        "legal_entity": customer.get("legal_entity"),
        "erp_subsidiary_id": customer.get("erp_subsidiary_id"),
        "crm_account_id": customer.get("crm_account_id") or account.get("external_id"),
        "hub_id": customer.get("hub_id"),
    }


def customer_body(customer: Mapping, *, subsidiary_id: str, currency_id: str | None) -> dict:
    flat = flat_customer(customer)
    if not flat["name"]:
        raise MappingError("The customer has no name", "name")
    return _compact(
        {
            "companyName": flat["name"][:83],  # NetSuite's companyName holds 83 characters
            "isPerson": False,
            "email": flat["email"],
            "vatRegNumber": flat["tax_id"],
            "subsidiary": ref(subsidiary_id),
            "currency": ref(currency_id) if currency_id else None,
        }
    )


def customer_from_netsuite(record: Mapping, *, currency_code: str | None = None) -> dict:
    return _compact(
        {
            "id": str(record.get("id", "")),
            "external_id": record.get("externalId"),
            "name": record.get("companyName"),
            "email": record.get("email"),
            "tax_id": record.get("vatRegNumber"),
            "currency": currency_code,
            "erp_subsidiary_id": ref_id(record.get("subsidiary")),
        }
    )


# --- sales orders ------------------------------------------------------------------------------
def item_line(line: Mapping, *, item_id: str, index: int, prefix: str = "lines") -> dict:
    quantity = to_decimal(line.get("quantity", "1"), f"{prefix}[{index}].quantity")
    rate = to_decimal(line.get("unit_price"), f"{prefix}[{index}].unit_price")
    return _compact(
        {
            "item": ref(item_id),
            "quantity": quantity,
            "rate": rate,
            "amount": line_amount(quantity, rate),
            "description": line.get("description"),
        }
    )


def check_charges(lines: list[Mapping], item_charges: Mapping[str, tuple[str, str]], prefix: str = "lines") -> None:
    """A line must bill as its item says (custom item field): a one-time item on a monthly line,
    or a monthly one billed yearly, is a MappingError naming the product. Items that say nothing
    (tax, adjustments) and lines that say nothing are left to the flows' own checks."""
    for i, line in enumerate(lines):
        charge, interval = item_charges.get(line.get("sku") or "", ("", ""))
        billing, key = stated_charge_type(line)  # charge_type (order.closed_won.v2) or billing (v1 name, amendment changes)
        if not charge or not billing:
            continue
        if charge != billing:
            raise MappingError(
                f"Product {line.get('sku')} bills {str(billing).replace('_', '-')} on the order but is a {charge.replace('_', '-')} item in NetSuite",
                f"{prefix}[{i}].{key}",
            )
        if charge == "recurring" and interval and line.get("interval") and line["interval"] != interval:
            raise MappingError(
                f"Product {line.get('sku')} bills every {line['interval']} on the order but the NetSuite item bills every {interval}", f"{prefix}[{i}].interval"
            )


def sales_order_body(order: Mapping, *, customer_id: str, item_ids: Mapping[str, str], currency_id: str, subsidiary_id: str | None, external_id: str) -> dict:
    """order.closed_won.v2 data → salesOrder body (for PUT /salesOrder/eid:{external_id})."""
    lines = [item_line(line, item_id=item_ids[line["sku"]], index=i) for i, line in enumerate(order.get("lines") or [])]
    if not lines:
        raise MappingError("The order has no lines", "lines")
    when = order.get("effective_date") or order.get("closed_won_at")
    memo = f"Order {order['order_number']}" + (f" — {order['account']['name']}" if order.get("account", {}).get("name") else "")
    return _compact(
        {
            "externalId": external_id,
            "tranId": order["order_number"],
            "entity": ref(customer_id),
            "subsidiary": ref(subsidiary_id) if subsidiary_id else None,
            "currency": ref(currency_id),
            "tranDate": to_date(when, "effective_date") if when else None,
            "otherRefNum": order.get("deal_id"),
            "memo": memo[:999],
            "item": {"items": lines},
        }
    )


def canonical_lines(record: Mapping, *, skus_by_item_id: Mapping[str, str], price_key: str) -> list[dict]:
    """A transaction's item lines → canonical lines (orders call the rate unit_price, invoices unit_amount)."""
    lines = []
    for line in _lines(record):
        item_id = ref_id(line.get("item"))
        lines.append(
            _compact(
                {
                    "sku": skus_by_item_id.get(item_id or "", (line.get("item") or {}).get("refName")),
                    "description": line.get("description"),
                    "quantity": quantity_str(line.get("quantity", 1)),
                    price_key: money_str(line["rate"]) if line.get("rate") is not None else None,
                    "amount": money_str(line.get("amount", 0)),
                }
            )
        )
    return lines


def sales_order_from_netsuite(record: Mapping, *, skus_by_item_id: Mapping[str, str], currency_code: str | None) -> dict:
    """salesOrder record (expanded) → canonical order view {id, external_id, order_number, status, total, currency, lines…}."""
    status = ref_id(record.get("status")) or ""
    lines = [
        {**line, "closed": bool(raw.get("isClosed"))}
        for raw, line in zip(_lines(record), canonical_lines(record, skus_by_item_id=skus_by_item_id, price_key="unit_price"))
    ]
    return _compact(
        {
            "id": str(record.get("id", "")),
            "external_id": record.get("externalId"),
            "order_number": record.get("tranId"),
            "status": SALES_ORDER_STATUS.get(status, status.lower() or "open"),
            "erp_status": status,
            "total": money_str(record.get("total", 0)),
            "currency": currency_code,
            "effective_date": record.get("tranDate"),
            "customer_id": ref_id(record.get("entity")),
            "erp_subsidiary_id": ref_id(record.get("subsidiary")),
            "lines": lines,
        }
    )


def close_lines_patch(record: Mapping) -> dict:
    """PATCH body closing every open line of a sales order (NetSuite closes orders line by line)."""
    return {"item": {"items": [{"line": line["line"], "isClosed": True} for line in _lines(record) if not line.get("isClosed")]}}


def change_order_body(change: Mapping, *, original: Mapping, customer_id: str, item_ids: Mapping[str, str], currency_id: str | None, external_id: str) -> dict:
    """subscription.amended.v1 / subscription.renewed.v1 data → a new sales order for its financial impact.

    An amendment's order lists the changed lines (new quantity × price); a renewal's repeats the
    original order's lines for the new term.
    """
    if change.get("changes"):
        lines = [item_line(line, item_id=item_ids[line["sku"]], index=i, prefix="changes") for i, line in enumerate(change["changes"])]
        when = change.get("effective_date") or change.get("requested_at")
        memo = f"Amendment {change.get('amendment_id')} of order {change.get('order_number')}"
        if change.get("arr_delta") is not None:
            memo += f" (ARR change {money_str(change['arr_delta'])})"
    else:
        lines = [
            _compact(
                {
                    "item": ref(ref_id(line["item"])),
                    "quantity": to_decimal(line.get("quantity", 1)),
                    "rate": to_decimal(line["rate"]) if line.get("rate") is not None else None,
                    "amount": to_decimal(line.get("amount", 0)),
                    "description": line.get("description"),
                }
            )
            for line in _lines(original)
        ]
        when = change.get("due_at")
        memo = f"Renewal {change.get('renewal_id')} of order {change.get('order_number')}"
        if change.get("term_months"):
            memo += f" ({change['term_months']} months)"
    if not lines:
        raise MappingError("The change has no lines", "changes")
    return _compact(
        {
            "externalId": external_id,
            "entity": ref(customer_id),
            "subsidiary": ref(ref_id(original.get("subsidiary"))) if ref_id(original.get("subsidiary")) else None,
            "currency": ref(currency_id) if currency_id else (ref(ref_id(original.get("currency"))) if ref_id(original.get("currency")) else None),
            "tranDate": to_date(when) if when else None,
            "memo": memo[:999],
            "item": {"items": lines},
        }
    )


# --- invoices ------------------------------------------------------------------------------------
def invoice_body(
    invoice: Mapping,
    *,
    customer_id: str,
    item_ids: Mapping[str, str],
    currency_id: str,
    subsidiary_id: str | None,
    external_id: str,
    sales_order_id: str | None = None,
    tax_item_id: str | None = None,
) -> dict:
    """invoice.finalized.v1 data → invoice body. Line amounts are kept as billing computed them;
    billing's tax becomes one line on the tax item, so the ERP total is the billing total."""
    lines = []
    for i, line in enumerate(invoice.get("lines") or []):
        quantity = to_decimal(line.get("quantity") or "1", f"lines[{i}].quantity")
        amount = to_decimal(line["amount"], f"lines[{i}].amount")
        rate = to_decimal(line["unit_amount"], f"lines[{i}].unit_amount") if line.get("unit_amount") not in (None, "") else None
        lines.append(
            _compact({"item": ref(item_ids[line["sku"]]), "quantity": quantity, "rate": rate, "amount": amount, "description": line.get("description")})
        )
    if not lines:
        raise MappingError("The invoice has no lines", "lines")
    tax = to_decimal(invoice.get("tax") or "0", "tax")
    if tax:
        if not tax_item_id:
            raise MappingError(f"The invoice carries tax {money_str(tax)} but no NetSuite tax item is configured (NETSUITE_TAX_ITEM)", "tax")
        lines.append({"item": ref(tax_item_id), "quantity": Decimal(1), "rate": tax, "amount": tax, "description": "Tax calculated by billing"})
    return _compact(
        {
            "externalId": external_id,
            "tranId": invoice["invoice_number"],
            "entity": ref(customer_id),
            "subsidiary": ref(subsidiary_id) if subsidiary_id else None,
            "currency": ref(currency_id),
            "tranDate": to_date(invoice["finalized_at"], "finalized_at"),
            "dueDate": to_date(invoice["due_date"], "due_date") if invoice.get("due_date") else None,
            "createdFrom": ref(sales_order_id) if sales_order_id else None,
            "otherRefNum": invoice.get("billing_invoice_id"),
            "memo": f"Billing invoice {invoice['invoice_number']}" + (f" for order {invoice['order_number']}" if invoice.get("order_number") else ""),
            "item": {"items": lines},
        }
    )


def invoice_from_netsuite(record: Mapping, *, skus_by_item_id: Mapping[str, str], currency_code: str | None) -> dict:
    status = ref_id(record.get("status")) or ""
    lines = canonical_lines(record, skus_by_item_id=skus_by_item_id, price_key="unit_amount")
    return _compact(
        {
            "erp_invoice_id": str(record.get("id", "")),
            "external_id": record.get("externalId"),
            "invoice_number": record.get("tranId"),
            "status": INVOICE_STATUS.get(status, status.lower()),
            "currency": currency_code,
            "total": money_str(record.get("total", 0)),
            "amount_remaining": money_str(record["amountRemaining"]) if record.get("amountRemaining") is not None else None,
            "invoice_date": record.get("tranDate"),
            "due_date": record.get("dueDate"),
            "billing_invoice_id": record.get("otherRefNum"),
            "lines": lines,
        }
    )


# --- payments and credit memos ----------------------------------------------------------------------
def payment_body(payment: Mapping, *, customer_id: str, currency_id: str, invoice_id: str | None, external_id: str) -> dict:
    """payment.received.v1 data → customerPayment body, applied to the invoice when known."""
    amount = to_decimal(payment["amount"], "amount")
    # an overpayment is applied up to what the invoice owes; the rest stays on the payment, unapplied (a customer credit)
    applied = to_decimal(payment["apply_amount"], "apply_amount") if payment.get("apply_amount") not in (None, "") else amount
    body = {
        "externalId": external_id,
        "customer": ref(customer_id),
        "currency": ref(currency_id),
        "payment": amount,
        "tranDate": to_date(payment.get("received_at") or payment.get("failed_at"), "received_at"),
        "memo": f"Payment {payment['payment_id']} for invoice {payment.get('invoice_number', '')}".strip(),
    }
    if invoice_id:
        body["apply"] = {"items": [{"doc": ref(invoice_id), "apply": True, "amount": applied}]} if applied else {"items": []}
    return body


def payment_from_netsuite(record: Mapping, *, currency_code: str | None) -> dict:
    applied = [ref_id(line.get("doc")) for line in _lines(record, "apply") if line.get("apply", True)]
    return _compact(
        {
            "id": str(record.get("id", "")),
            "external_id": record.get("externalId"),
            "amount": money_str(record.get("payment", 0)),
            "currency": currency_code,
            "received_on": record.get("tranDate"),
            "invoice_ids": [a for a in applied if a],
        }
    )


def credit_memo_body(
    credit_memo: Mapping,
    *,
    customer_id: str,
    item_ids: Mapping[str, str],
    default_item_id: str,
    currency_id: str,
    subsidiary_id: str | None,
    invoice_id: str | None,
    external_id: str,
) -> dict:
    """credit_memo.issued.v1 data → creditMemo body. Without lines, one line on the adjustment item."""
    if credit_memo.get("lines"):
        lines = [item_line(line, item_id=item_ids[line["sku"]], index=i) for i, line in enumerate(credit_memo["lines"])]
    else:
        amount = to_decimal(credit_memo["amount"], "amount")
        lines = [
            {
                "item": ref(default_item_id),
                "quantity": Decimal(1),
                "rate": amount,
                "amount": amount,
                "description": credit_memo.get("reason") or f"Credit {credit_memo['credit_memo_number']}",
            }
        ]
    return _compact(
        {
            "externalId": external_id,
            "tranId": credit_memo["credit_memo_number"],
            "entity": ref(customer_id),
            "subsidiary": ref(subsidiary_id) if subsidiary_id else None,
            "currency": ref(currency_id),
            "tranDate": to_date(credit_memo["issued_at"], "issued_at"),
            "createdFrom": ref(invoice_id) if invoice_id else None,
            "memo": (credit_memo.get("reason") or "")[:999] or None,
            "item": {"items": lines},
        }
    )


def credit_memo_from_netsuite(record: Mapping, *, currency_code: str | None) -> dict:
    return _compact(
        {
            "id": str(record.get("id", "")),
            "external_id": record.get("externalId"),
            "credit_memo_number": record.get("tranId"),
            "amount": money_str(record.get("total", 0)),
            "currency": currency_code,
            "issued_on": record.get("tranDate"),
            "erp_invoice_id": ref_id(record.get("createdFrom")),
        }
    )
