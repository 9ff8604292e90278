"""Salesforce records and change events ↔ canonical event data. Pure functions, no I/O.

Money is a decimal string (never float): Salesforce sends currency fields as JSON numbers,
so each goes through `str()` of the parsed number, which round-trips the digits sent.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings

from sync.canonical import charges
from sync.connectors.errors import ConnectorError

SYSTEM = "salesforce"
TWO = Decimal("0.01")
FOUR = Decimal("0.0001")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def mapping_error(message: str, field: str = "") -> ConnectorError:
    return ConnectorError("mapping", message, system=SYSTEM, field=field)


# --- scalars ---------------------------------------------------------------------------------
def decimal(value, *, field: str = "") -> Decimal:
    if value is None or value == "" or isinstance(value, bool):
        raise mapping_error(f"{field or 'amount'} is missing", field)
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise mapping_error(f"{field or 'amount'} is not a number: {value!r}", field) from None
    if not number.is_finite():
        raise mapping_error(f"{field or 'amount'} is not a finite number: {value!r}", field)
    return number


def record_currency(record) -> str:
    """A record's CurrencyIsoCode. Single-currency orgs have no such field: their records are
    in the org's corporate currency, configured as SALESFORCE_CORPORATE_CURRENCY (not guessed)."""
    code = record.get("CurrencyIsoCode") or settings.CONNECTORS["salesforce"].get("corporate_currency") or "USD"
    return str(code).upper()


def money(value, *, field: str = "amount") -> str:
    """A currency value as a decimal string: 2 places, or up to 4 when the value has them."""
    number = decimal(value, field=field)
    scale = TWO if number == number.quantize(TWO) else FOUR
    result = number.quantize(scale)
    if result != number:
        raise mapping_error(f"{field} has more than 4 decimal places: {value!r}", field)
    return f"{result:f}"


def quantity(value, *, field: str = "quantity") -> str:
    """A quantity as a decimal string without trailing zeros (10.0 → "10", 2.50 → "2.5")."""
    number = decimal(value, field=field)
    if number < 0:
        raise mapping_error(f"{field} cannot be negative: {value!r}", field)
    if number != number.quantize(FOUR):
        raise mapping_error(f"{field} has more than 4 decimal places: {value!r}", field)
    text = f"{number.quantize(FOUR):f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_datetime(value) -> datetime:
    """Salesforce REST (`2026-01-31T10:00:00.000+0000`), CDC (`…Z`), ISO, or epoch ms → aware UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return EPOCH + timedelta(milliseconds=int(value))  # exact: no float seconds
    text = str(value or "").strip()
    if not text:
        raise mapping_error("timestamp is missing")
    text = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise mapping_error(f"not a Salesforce date-time: {value!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch, exactly (as commitTimestamp)."""
    return (value - EPOCH) // timedelta(milliseconds=1)


def iso(value) -> str:
    return parse_datetime(value).isoformat()


def date_string(value) -> str | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise mapping_error(f"not a date: {value!r}") from None


def sf_datetime(value: datetime) -> str:
    """A SOQL datetime literal (UTC, no quotes)."""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def soql_quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- products --------------------------------------------------------------------------------
INTERVALS = {"monthly": ("month", 1), "quarterly": ("month", 3), "semiannual": ("month", 6), "annual": ("year", 1)}


CHARGE_TYPES = {"recurring": "recurring", "one-time": "one_time", "usage": "usage"}


def billing_of(product: dict | None) -> dict:
    """How a product bills, from CPQ's SBQQ__ChargeType__c (and SBQQ__BillingFrequency__c for
    recurring and usage charges): {billing: recurring|one_time|usage, interval?, interval_count?}.
    Nothing is guessed from the product family: a product without a known charge type, or a
    recurring one without a billing frequency, is a mapping error naming the product."""
    product = product or {}
    label = product.get("ProductCode") or product.get("Id") or "?"
    if product.get("Name") and product.get("Name") != label:
        label = f"{label} ({product['Name']})"
    raw = (product.get("SBQQ__ChargeType__c") or "").strip()
    charge = CHARGE_TYPES.get(raw.lower())
    if charge is None:
        problem = "has no charge type" if not raw else f"has an unknown charge type {raw!r}"
        raise mapping_error(
            f"Product {label} {problem} (SBQQ__ChargeType__c): set Recurring, One-Time or Usage on the product in Salesforce", "Product2.SBQQ__ChargeType__c"
        )
    if charge == "one_time":
        return {"billing": "one_time"}
    frequency = (product.get("SBQQ__BillingFrequency__c") or "").strip()
    if frequency.lower() not in INTERVALS:
        problem = "has no billing frequency" if not frequency else f"has an unknown billing frequency {frequency!r}"
        raise mapping_error(
            f"{raw} product {label} {problem} (SBQQ__BillingFrequency__c): set Monthly, Quarterly, Semiannual or Annual", "Product2.SBQQ__BillingFrequency__c"
        )
    interval, count = INTERVALS[frequency.lower()]
    out = {"billing": charge, "interval": interval}
    if count != 1:
        out["interval_count"] = count
    return out


def line_of(item: dict) -> dict:
    product = {"Id": item.get("Product2Id"), **(item.get("Product2") or {})}
    sku = product.get("ProductCode") or ""
    if not sku:
        raise mapping_error(f"order product {item.get('Id', '')} has no product code (SKU)", "ProductCode")
    line = {"sku": sku, "quantity": quantity(item.get("Quantity")), "unit_price": money(item.get("UnitPrice"), field="unit_price")}
    if product.get("Name"):
        line["description"] = product["Name"]
    line.update(billing_of(product))
    if item.get("Id"):
        line["crm_line_id"] = item["Id"]
    return line


def annual_value(lines: list[dict]) -> Decimal:
    """ARR of the lines: recurring ones normalised to a year (monthly × 12, annual × 1, every n months × 12/n)."""
    return charges.arr(lines).quantize(TWO)


# --- accounts --------------------------------------------------------------------------------
def account_of(account: dict) -> dict:
    if not account or not account.get("Id"):
        raise mapping_error("the order has no account", "AccountId")
    if not account.get("Name"):
        raise mapping_error(f"account {account['Id']} has no name", "Name")
    out = {"external_id": account["Id"], "name": account["Name"]}
    email = (account.get("Billing_Email__c") or "").strip()
    if email and _EMAIL.match(email):
        out["email"] = email
    for key, field in (
        ("tax_id", "Tax_Id__c"),
        ("segment", "Segment__c"),
        ("owner", "OwnerId"),
        ("country", "BillingCountry"),
        ("erp_customer_id", "ERP_Customer_Id__c"),
        ("billing_customer_id", "Billing_Customer_Id__c"),
    ):
        if account.get(field):
            out[key] = str(account[field])
    return out


def customer_upserted(account: dict) -> dict:
    data = {"account": account_of(account), "currency": record_currency(account)}
    if account.get("Legal_Entity__c"):
        data["legal_entity"] = account["Legal_Entity__c"]
    if account.get("Payment_Terms__c"):
        data["payment_terms"] = account["Payment_Terms__c"]
    return data


# --- orders ----------------------------------------------------------------------------------
def order_closed_won(order: dict, items: list[dict]) -> dict:
    """order: the Order row with Account, Opportunity and Contract relationship fields.
    closed_won_at is when the order was created from the won deal (Order.CreatedDate)."""
    if not order.get("OrderNumber"):
        raise mapping_error(f"order {order.get('Id')} has no order number", "OrderNumber")
    account = order.get("Account") or {}
    try:
        lines = [line_of(item) for item in items]
    except ConnectorError as exc:
        exc.document = {
            "document_number": order["OrderNumber"],
            "account_name": account.get("Name") or "",
            "currency": record_currency(order),
            "amount": str(_first_year_value(items)),
        }
        raise
    if not lines:
        raise mapping_error(f"order {order['OrderNumber']} has no products yet", "OrderItem")
    data = {
        "order_number": order["OrderNumber"],
        "crm_record_id": order["Id"],
        "account": account_of({"Id": order.get("AccountId"), **account}),
        "currency": record_currency(order),
        "closed_won_at": iso(order["CreatedDate"]),
        "lines": lines,
        "total_amount": money(sum((Decimal(l["quantity"]) * Decimal(l["unit_price"]) for l in lines), Decimal("0")), field="total_amount"),
    }
    if order.get("EffectiveDate"):
        data["effective_date"] = date_string(order["EffectiveDate"])
    if order.get("OpportunityId"):
        data["opportunity_id"] = order["OpportunityId"]
    entity = order.get("Legal_Entity__c") or account.get("Legal_Entity__c")
    if entity:
        data["legal_entity"] = entity[:32]
    term = (order.get("Contract") or {}).get("ContractTerm")
    if term:
        data["term_months"] = int(term)
    if order.get("ContractId"):
        data["contract_id"] = order["ContractId"]
    return data


def _first_year_value(items: list[dict]) -> Decimal:
    """The order's first-year value for an exception on it (docs/MONEY.md): lines whose charge
    type is unknown count once at quantity × unit price."""
    out = []
    for item in items:
        line = {
            "sku": (item.get("Product2") or {}).get("ProductCode") or "?",
            "quantity": str(item.get("Quantity") or 0),
            "unit_price": str(item.get("UnitPrice") or 0),
        }
        try:
            line.update(billing_of({"Id": item.get("Product2Id"), **(item.get("Product2") or {})}))
        except ConnectorError:
            pass
        out.append(line)
    return charges.first_year_value(out).quantize(TWO)


def subscription_amended(order: dict, items: list[dict], contract_items: list[dict], original_order_number: str) -> dict:
    """An amendment order's products carry quantity deltas; `changes` carry the resulting totals
    per SKU over the contract's orders so far (what the subscription must look like)."""
    totals: dict[str, Decimal] = {}
    prices: dict[str, str] = {}
    products: dict[str, dict] = {}
    for row in contract_items:
        sku = (row.get("Product2") or {}).get("ProductCode")
        if not sku:
            continue
        totals[sku] = totals.get(sku, Decimal("0")) + decimal(row.get("Quantity"), field="Quantity")
        products[sku] = row.get("Product2") or {}
    before: dict[str, Decimal] = dict(totals)
    changes = []
    for item in items:
        sku = (item.get("Product2") or {}).get("ProductCode")
        if not sku:
            raise mapping_error(f"amendment product {item.get('Id')} has no product code", "ProductCode")
        delta = decimal(item.get("Quantity"), field="Quantity")
        before[sku] = before.get(sku, Decimal("0")) - delta
        prices[sku] = money(item.get("UnitPrice"), field="unit_price")
        products[sku] = item.get("Product2") or {}
    for sku, price in prices.items():
        total = totals.get(sku, Decimal("0"))
        if total < 0:
            raise mapping_error(f"amendment would leave {sku} with a negative quantity ({total})", "Quantity")
        change = {"sku": sku, "quantity": quantity(total), "unit_price": price, **billing_of(products[sku])}
        if products[sku].get("Name"):
            change["description"] = products[sku]["Name"]
        changes.append(change)
    if not changes:
        raise mapping_error(f"amendment {order.get('OrderNumber')} has no products yet", "OrderItem")
    old = [{**c, "quantity": quantity(max(before.get(c["sku"], Decimal("0")), Decimal("0")))} for c in changes]
    data = {
        "amendment_id": order.get("OrderNumber") or order["Id"],
        "order_number": original_order_number,
        "currency": record_currency(order),
        "requested_at": iso(order["CreatedDate"]),
        "changes": changes,
        "arr_delta": money(annual_value(changes) - annual_value(old), field="arr_delta"),
        "crm_record_id": order["Id"],
    }
    if order.get("EffectiveDate"):
        data["effective_date"] = date_string(order["EffectiveDate"])
    return data


def months_between(start: str, end: str) -> int:
    """Term in whole months of [start, end] with end inclusive (2027-11-23 … 2028-11-22 → 12)."""
    days = (date.fromisoformat(end) - date.fromisoformat(start)).days + 1
    return max(1, min(120, round(days / (365.25 / 12))))


def subscription_renewed(order: dict, items: list[dict], original_order_number: str) -> dict:
    lines = [line_of(item) for item in items]
    data = {
        "renewal_id": order.get("OrderNumber") or order["Id"],
        "order_number": original_order_number,
        "due_at": datetime.combine(date.fromisoformat(date_string(order["EffectiveDate"])), datetime.min.time(), tzinfo=UTC).isoformat(),
        "currency": record_currency(order),
        "arr": money(annual_value(lines), field="arr"),
        "lines": lines,
        "crm_record_id": order["Id"],
    }
    if order.get("EffectiveDate") and order.get("EndDate"):
        data["term_months"] = months_between(date_string(order["EffectiveDate"]), date_string(order["EndDate"]))
    return data


def subscription_cancelled(contract: dict, order_number: str, requested_at: str, lines: list[dict]) -> dict:
    data = {
        "order_number": order_number,
        "requested_at": requested_at,
        "currency": record_currency(contract),
        "arr": money(annual_value(lines), field="arr"),
        "crm_record_id": contract["Id"],
    }
    if contract.get("Description"):
        data["reason"] = contract["Description"]
    if contract.get("EndDate"):
        data["cancel_at"] = datetime.combine(
            date.fromisoformat(date_string(contract["EndDate"])), datetime.max.time().replace(microsecond=0), tzinfo=UTC
        ).isoformat()
    return data


# --- change events ---------------------------------------------------------------------------
def header_of(message: dict) -> dict:
    return ((message or {}).get("payload") or {}).get("ChangeEventHeader") or {}


def is_echo(message: dict, client_id: str) -> bool:
    """A change our own API calls made (changeOrigin `…;client=<our client id>`)."""
    origin = header_of(message).get("changeOrigin") or ""
    m = re.search(r";client=([^;]+)", origin)
    return bool(client_id) and m is not None and m.group(1) == client_id


def raw_event(message: dict) -> dict:
    """One CometD CDC message → the hub's raw event shape."""
    header = header_of(message)
    entity = header.get("entityName")
    change_type = header.get("changeType")
    if not entity or not change_type:
        raise ConnectorError(
            "validation", "change event without entityName/changeType in its ChangeEventHeader", system=SYSTEM, field="payload.ChangeEventHeader"
        )
    replay = (message.get("event") or {}).get("replayId")
    if replay is not None:
        event_id = f"{entity}:{replay}"
    elif header.get("transactionKey"):
        event_id = f"{entity}:{header['transactionKey']}:{header.get('sequenceNumber', 0)}"
    else:
        event_id = f"{entity}:{':'.join(header.get('recordIds') or [])}:{header.get('commitTimestamp')}"
    return {"id": event_id, "type": f"{entity}:{change_type}", "occurred_at": iso(header.get("commitTimestamp") or 0), "payload": message}


def platform_event_message(event: dict) -> dict:
    """A platform event (`{"data": {"schema", "payload": {...}, "event": {"replayId"}}, "channel": "/event/X__e"}`
    or a bare payload with `Record_Id__c`/`Entity__c`) → the CDC shape normalize understands."""
    data = event.get("data") if isinstance(event.get("data"), dict) else event
    payload = dict(data.get("payload") or {})
    channel = event.get("channel") or ""
    entity = payload.get("Entity__c") or payload.get("Object__c") or channel.rsplit("/", 1)[-1]
    record_id = payload.get("Record_Id__c") or payload.get("RecordId__c") or ""
    change = (payload.get("Change_Type__c") or "UPDATE").upper()
    header = {
        "entityName": entity,
        "recordIds": [record_id] if record_id else [],
        "changeType": change,
        "changeOrigin": payload.get("Change_Origin__c") or "",
        "commitTimestamp": epoch_ms(parse_datetime(payload.get("CreatedDate") or datetime.now(UTC))),
    }
    return {"schema": data.get("schema"), "payload": {"ChangeEventHeader": header, **payload}, "event": data.get("event") or {}}
