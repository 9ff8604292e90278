"""Stripe payloads ↔ canonical data. Pure functions: no HTTP, no database.

Stripe money is an integer in the currency's minor unit (cents; yen for JPY, which has
none; thousandths for KWD); canonical money is a decimal string in major units.
Shapes follow API version 2025-03-31.basil: billing periods on subscription items, the
invoice → subscription link under `invoice.parent.subscription_details`, invoice line
prices under `line.pricing.price_details`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL_CURRENCIES = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"})
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

ECHO_PREFIX = "q2c-"  # our Idempotency-Keys and cancellation comments start with this
INTERVALS_PER_YEAR = {"day": Decimal(365), "week": Decimal(52), "month": Decimal(12), "year": Decimal(1)}


class MappingError(ValueError):
    """A value cannot be expressed in the other system (e.g. a fraction of a cent)."""


# --- money -------------------------------------------------------------------------------
def exponent(currency: str) -> int:
    code = (currency or "").upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def _decimal(value) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MappingError(f"{value!r} is not a decimal amount") from exc
    if not result.is_finite():
        raise MappingError(f"{value!r} is not a decimal amount")
    return result


def to_minor(amount, currency: str) -> int:
    """Major-unit decimal ("12.34", USD) → Stripe integer (1234). Refuses sub-minor-unit amounts."""
    value = _decimal(amount) * (Decimal(10) ** exponent(currency))
    if value != value.to_integral_value():
        raise MappingError(f"{amount} {currency.upper()} has more decimals than {currency.upper()} allows ({exponent(currency)})")
    return int(value)


def to_minor_decimal(amount, currency: str) -> str:
    """Major-unit decimal → Stripe `unit_amount_decimal` (minor units, up to 12 decimals)."""
    value = _decimal(amount) * (Decimal(10) ** exponent(currency))
    if value == value.to_integral_value():
        return str(int(value))
    text = format(value.normalize(), "f")
    if len(text.partition(".")[2]) > 12:
        raise MappingError(f"{amount} has more than 12 decimals in {currency.upper()} minor units")
    return text


def to_major(minor, currency: str) -> str:
    """Stripe integer (or unit_amount_decimal string) → major-unit decimal string ("12.34", "1000" for JPY)."""
    places = exponent(currency)
    value = _decimal(minor) / (Decimal(10) ** places)
    quantum = Decimal(1).scaleb(-places)
    if value == value.quantize(quantum):
        return format(value.quantize(quantum), "f")
    return format(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP), "f")  # schema allows 4 places


def quantity_str(quantity) -> str:
    value = _decimal(quantity or 0)
    return format(value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize(), "f")


def to_quantity(quantity) -> int:
    """Canonical quantity ("3", "3.0") → Stripe's integer; fractions cannot be billed per seat."""
    value = _decimal(quantity)
    if value != value.to_integral_value() or value < 0:
        raise MappingError(f"quantity {quantity} must be a whole number for Stripe")
    return int(value)


# --- time --------------------------------------------------------------------------------
def ts_to_iso(ts) -> str | None:
    """Unix seconds → ISO 8601 UTC ("2025-04-01T12:00:00Z")."""
    if ts in (None, ""):
        return None
    return datetime.fromtimestamp(int(ts), tz=UTC).isoformat().replace("+00:00", "Z")


def ts_to_date(ts) -> str | None:
    if ts in (None, ""):
        return None
    return datetime.fromtimestamp(int(ts), tz=UTC).date().isoformat()


def to_ts(value) -> int:
    """Aware datetime, date, ISO string or Unix seconds → Unix seconds (naive = UTC)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


# --- signing webhooks: the sandbox and the tests sign what they send like Stripe does -------
# (docs.stripe.com/webhooks#verify-manually). Verifying is webhook.py's, with stripe-python.
def compute_signature(timestamp: int, body: bytes, secret: str) -> str:
    signed = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},v1={compute_signature(timestamp, body, secret)}"


# --- objects → canonical ------------------------------------------------------------------
def _get(obj, *path, default=None):
    for key in path:
        if obj is None:
            return default
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return default
    return default if obj is None else obj


def _essential(obj: Mapping, *keys: str):
    """The first of `keys` the object has (not null). Stripe always sends a document's currency
    and amounts; a payload without them is not something to guess at (a missing currency is not
    USD, a missing total is not zero), so KeyError → the inbox dead-letters the event with the
    field's name, and it can be replayed once the source is fixed."""
    for key in keys:
        if obj.get(key) is not None:
            return obj[key]
    raise KeyError(" or ".join(f"{obj.get('object') or 'object'}.{k}" for k in keys))


def item_sku(item: Mapping) -> str:
    """A subscription item's SKU: our products use the SKU as the Stripe product id."""
    product = _get(item, "price", "product")
    if isinstance(product, Mapping):
        product = product.get("id")
    return _get(item, "metadata", "sku") or product or ""


def item_unit_price(item: Mapping, currency: str) -> str:
    price = item.get("price") or {}
    amount = price.get("unit_amount_decimal") if price.get("unit_amount_decimal") not in (None, "") else price.get("unit_amount")
    return to_major(amount or 0, currency)


def item_charge(item: Mapping) -> dict:
    """How a subscription item bills, from its price (`type`, `recurring`): {billing, interval,
    interval_count?}. Never guessed: a price that says neither is a MappingError naming the product."""
    price = item.get("price") or {}
    recurring = price.get("recurring") or {}
    product = item_sku(item) or price.get("id") or "?"
    if price.get("type") == "one_time" or (not recurring and price.get("type") != "recurring"):
        raise MappingError(f"subscription item {item.get('id', '')} of product {product} has no recurring price (price type {price.get('type')!r})")
    interval = recurring.get("interval")
    if interval not in INTERVALS_PER_YEAR:
        raise MappingError(f"the price of product {product} has no known billing interval ({interval!r})")
    out = {"billing": "usage" if recurring.get("usage_type") == "metered" else "recurring", "interval": interval}
    if int(recurring.get("interval_count") or 1) != 1:
        out["interval_count"] = int(recurring["interval_count"])
    return out


def item_annual_factor(item: Mapping) -> Decimal:
    """Periods a year of a licensed recurring item (monthly × 12, yearly × 1, every n × 1/n); metered usage is no ARR."""
    charge = item_charge(item)
    if charge["billing"] != "recurring":
        return Decimal(0)
    return INTERVALS_PER_YEAR[charge["interval"]] / Decimal(charge.get("interval_count") or 1)


def items_of(subscription: Mapping) -> list[dict]:
    items = subscription.get("items") or {}
    return list(items.get("data") or []) if isinstance(items, Mapping) else list(items)


def subscription_arr(items: list[Mapping], currency: str) -> Decimal:
    total = Decimal(0)
    for item in items:
        total += Decimal(item_unit_price(item, currency)) * Decimal(item.get("quantity") or 0) * item_annual_factor(item)
    return total


def money_str(value: Decimal, currency: str) -> str:
    places = exponent(currency)
    return format(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP), "f")


def subscription_to_canonical(sub: Mapping) -> dict:
    currency = (sub.get("currency") or "usd").upper()
    items = items_of(sub)
    return {
        "id": sub["id"],
        "status": sub.get("status", ""),
        "currency": currency,
        "customer_id": sub.get("customer") if isinstance(sub.get("customer"), str) else _get(sub, "customer", "id", default=""),
        "order_number": _get(sub, "metadata", "order_number", default=""),
        "items": [
            {
                "id": item["id"],
                "sku": item_sku(item),
                "quantity": quantity_str(item.get("quantity") or 0),
                "unit_price": item_unit_price(item, currency),
                **item_charge(item),
                "current_period_end": ts_to_iso(item.get("current_period_end")),
            }
            for item in items
        ],
        "arr": money_str(subscription_arr(items, currency), currency),
        "cancel_at_period_end": bool(sub.get("cancel_at_period_end")),
    }


def invoice_order_number(invoice: Mapping) -> str:
    """basil: parent.subscription_details.metadata (a snapshot of the subscription's metadata)."""
    return (
        _get(invoice, "parent", "subscription_details", "metadata", "order_number")
        or _get(invoice, "subscription_details", "metadata", "order_number")  # before basil
        or _get(invoice, "metadata", "order_number")
        or ""
    )


def invoice_subscription_id(invoice: Mapping) -> str:
    value = _get(invoice, "parent", "subscription_details", "subscription") or invoice.get("subscription") or ""
    return value if isinstance(value, str) else _get(value, "id", default="")


def _customer_id(obj: Mapping) -> str:
    value = obj.get("customer") or ""
    return value if isinstance(value, str) else _get(value, "id", default="")


def invoice_to_canonical(invoice: Mapping) -> dict:
    currency = invoice.get("currency") or "usd"
    return {
        "id": invoice["id"],
        "number": invoice.get("number") or "",
        "status": invoice.get("status", ""),
        "currency": currency.upper(),
        "total": to_major(invoice.get("total") or 0, currency),
        "amount_due": to_major(invoice.get("amount_due") or 0, currency),
        "amount_paid": to_major(invoice.get("amount_paid") or 0, currency),
        "customer_id": _customer_id(invoice),
        "subscription_id": invoice_subscription_id(invoice),
        "order_number": invoice_order_number(invoice),
        "finalized_at": ts_to_iso(_get(invoice, "status_transitions", "finalized_at")),
        "paid_at": ts_to_iso(_get(invoice, "status_transitions", "paid_at")),
    }


def _line_sku(line: Mapping) -> str:
    product = _get(line, "pricing", "price_details", "product") or _get(line, "price", "product")
    if isinstance(product, Mapping):
        product = product.get("id")
    return _get(line, "metadata", "sku") or product or ""


def line_charge_type(line: Mapping) -> str:
    """An invoice line's charge type from what it bills (basil `parent.type`): a subscription
    item (recurring, its prorations included) or a one-time invoice item; "" when the line says neither."""
    kind = _get(line, "parent", "type") or ""
    if kind == "subscription_item_details":
        return "recurring"
    if kind == "invoice_item_details":
        return "recurring" if _get(line, "parent", "invoice_item_details", "proration") else "one_time"
    return ""


def invoice_lines(invoice: Mapping) -> list[dict]:
    currency = invoice.get("currency") or "usd"
    lines = []
    for line in _get(invoice, "lines", "data", default=[]):
        entry = {"description": line.get("description") or "", "amount": to_major(line.get("amount") or 0, currency)}
        if _line_sku(line):
            entry["sku"] = _line_sku(line)
        if line.get("quantity") is not None:
            entry["quantity"] = quantity_str(line["quantity"])
        unit = _get(line, "pricing", "unit_amount_decimal")
        if unit not in (None, ""):
            entry["unit_amount"] = to_major(unit, currency)
        kind = line_charge_type(line)
        if kind:
            entry["charge_type"] = kind
        lines.append(entry)
    return lines


def _invoice_tax(invoice: Mapping) -> int:
    taxes = invoice.get("total_taxes")
    if isinstance(taxes, list):
        return sum(int(t.get("amount") or 0) for t in taxes)
    return int(invoice.get("tax") or 0)


# --- events → canonical envelopes ----------------------------------------------------------
def envelope(event: Mapping, event_type: str, data: dict) -> dict:
    return {"id": event["id"], "type": event_type, "source": "stripe", "occurred_at": ts_to_iso(event.get("created") or time.time()), "data": data}


def is_echo(event: Mapping) -> bool:
    """Our own write coming back: we send every Idempotency-Key with ECHO_PREFIX."""
    key = _get(event, "request", "idempotency_key", default="")
    if isinstance(key, str) and key.startswith(ECHO_PREFIX):
        return True
    comment = _get(event, "data", "object", "cancellation_details", "comment", default="")
    return event.get("type") == "customer.subscription.deleted" and isinstance(comment, str) and comment.startswith(ECHO_PREFIX)


def _item_state(items: list[Mapping], currency: str) -> dict[str, tuple[str, str, dict]]:
    state = {}
    for item in items:
        sku = item_sku(item)
        if not sku:
            continue
        state[sku] = (quantity_str(item.get("quantity") or 0), item_unit_price(item, currency), item)
    return state


def amendment_from_event(event: Mapping) -> list[dict]:
    sub = _get(event, "data", "object", default={})
    previous = _get(event, "data", "previous_attributes", default={})
    if is_echo(event) or not isinstance(previous, Mapping) or not ({"items", "quantity"} & set(previous)):
        return []
    order_number = _get(sub, "metadata", "order_number", default="")
    if not order_number or sub.get("status") == "canceled":
        return []
    currency = _essential(sub, "currency")
    now_items = items_of(sub)
    before_items = items_of(previous) if "items" in previous else now_items
    if "quantity" in previous and "items" not in previous and len(now_items) == 1:  # legacy single-item shape
        before_items = [{**now_items[0], "quantity": previous["quantity"]}]
    before, after = _item_state(before_items, currency), _item_state(now_items, currency)
    changes = []
    for sku, (quantity, unit_price, item) in after.items():
        if before.get(sku, (None, None))[:2] != (quantity, unit_price):
            changes.append({"sku": sku, "quantity": quantity, "unit_price": unit_price, **item_charge(item)})
    for sku, (_, unit_price, item) in before.items():
        if sku not in after:
            changes.append({"sku": sku, "quantity": "0", "unit_price": unit_price, **item_charge(item)})
    if not changes:
        return []
    delta = subscription_arr(now_items, currency) - subscription_arr(before_items, currency)
    created = event.get("created") or time.time()
    return [
        envelope(
            event,
            "subscription.amended.v1",
            {
                "amendment_id": event["id"],
                "order_number": order_number,
                "billing_subscription_id": sub.get("id", ""),
                "billing_customer_id": _customer_id(sub),
                "effective_date": ts_to_date(created),
                "requested_at": ts_to_iso(created),
                "currency": currency.upper(),
                "arr_delta": money_str(delta, currency),
                "changes": changes,
            },
        )
    ]


def cancellation_from_event(event: Mapping) -> list[dict]:
    sub = _get(event, "data", "object", default={})
    order_number = _get(sub, "metadata", "order_number", default="")
    if is_echo(event) or not order_number:
        return []
    currency = _essential(sub, "currency")
    details = sub.get("cancellation_details") or {}
    data = {
        "order_number": order_number,
        "billing_subscription_id": sub.get("id", ""),
        "billing_customer_id": _customer_id(sub),
        "requested_at": ts_to_iso(sub.get("canceled_at") or event.get("created")),
        "currency": currency.upper(),
        "arr": money_str(subscription_arr(items_of(sub), currency), currency),
    }
    if sub.get("ended_at") or sub.get("cancel_at"):
        data["cancel_at"] = ts_to_iso(sub.get("ended_at") or sub.get("cancel_at"))
    reason = details.get("feedback") or details.get("reason") or details.get("comment")
    if reason:
        data["reason"] = str(reason)
    return [envelope(event, "subscription.cancelled.v1", data)]


def _common_invoice_fields(invoice: Mapping) -> dict:
    data = {"billing_invoice_id": invoice.get("id", ""), "billing_customer_id": _customer_id(invoice)}
    if invoice_order_number(invoice):
        data["order_number"] = invoice_order_number(invoice)
    if invoice_subscription_id(invoice):
        data["billing_subscription_id"] = invoice_subscription_id(invoice)
    if invoice.get("customer_name"):
        data["account_name"] = invoice["customer_name"]
    return data


def invoice_finalized_from_event(event: Mapping) -> list[dict]:
    invoice = _get(event, "data", "object", default={})
    currency = _essential(invoice, "currency")
    total = int(_essential(invoice, "total"))
    tax = _invoice_tax(invoice)
    subtotal = invoice.get("subtotal") if invoice.get("subtotal") is not None else total - tax
    data = {
        "invoice_number": _essential(invoice, "number", "id"),
        **_common_invoice_fields(invoice),
        "currency": currency.upper(),
        "subtotal": to_major(subtotal, currency),
        "tax": to_major(tax, currency),
        "total": to_major(total, currency),
        "finalized_at": ts_to_iso(_get(invoice, "status_transitions", "finalized_at") or event.get("created")),
        "lines": invoice_lines(invoice),
    }
    if invoice.get("due_date"):
        data["due_date"] = ts_to_date(invoice["due_date"])
    if invoice.get("billing_reason"):
        data["billing_reason"] = invoice["billing_reason"]
    return [envelope(event, "invoice.finalized.v1", data)]


def payment_from_event(event: Mapping) -> list[dict]:
    invoice = _get(event, "data", "object", default={})
    currency = _essential(invoice, "currency")
    number = invoice.get("number") or _essential(invoice, "id")
    if event.get("type") == "invoice.paid":
        return [
            envelope(
                event,
                "payment.received.v1",
                {
                    "payment_id": f"{invoice['id']}:paid",
                    "invoice_number": number,
                    **_common_invoice_fields(invoice),
                    "amount": to_major(_essential(invoice, "amount_paid"), currency),
                    "currency": currency.upper(),
                    "received_at": ts_to_iso(_get(invoice, "status_transitions", "paid_at") or event.get("created")),
                },
            )
        ]
    attempt = int(invoice.get("attempt_count") or 1)
    reason = f"payment attempt {attempt} failed"
    if invoice.get("next_payment_attempt"):
        reason += f"; next attempt {ts_to_iso(invoice['next_payment_attempt'])}"
    return [
        envelope(
            event,
            "payment.failed.v1",
            {
                "payment_id": f"{invoice['id']}:attempt{attempt}",
                "invoice_number": number,
                **_common_invoice_fields(invoice),
                "amount": to_major(_essential(invoice, "amount_remaining", "amount_due"), currency),
                "currency": currency.upper(),
                "failed_at": ts_to_iso(event.get("created")),
                "attempt": attempt,
                "reason": reason,
            },
        )
    ]


def credit_note_from_event(event: Mapping, fetch_invoice: Callable[[str], Mapping | None] | None = None) -> list[dict]:
    note = _get(event, "data", "object", default={})
    currency = _essential(note, "currency")
    data = {
        "credit_memo_number": note.get("number") or _essential(note, "id"),
        "billing_credit_note_id": note["id"],
        "billing_customer_id": _customer_id(note),
        "amount": to_major(_essential(note, "total", "amount"), currency),
        "currency": currency.upper(),
        "issued_at": ts_to_iso(note.get("effective_at") or note.get("created") or event.get("created")),
    }
    if note.get("reason"):
        data["reason"] = note["reason"]
    if note.get("memo"):
        data["memo"] = note["memo"]
    invoice = note.get("invoice")
    if isinstance(invoice, str) and invoice and fetch_invoice is not None:
        invoice = fetch_invoice(invoice)
    if isinstance(invoice, Mapping):
        if invoice.get("number"):
            data["invoice_number"] = invoice["number"]
        if invoice_order_number(invoice):
            data["order_number"] = invoice_order_number(invoice)
        data["billing_invoice_id"] = invoice.get("id", "")
    elif isinstance(invoice, str):
        data["billing_invoice_id"] = invoice
    return [envelope(event, "credit_memo.issued.v1", data)]


def normalize_event(event: Mapping, fetch_invoice: Callable[[str], Mapping | None] | None = None) -> list[dict]:
    kind = event.get("type")
    if kind == "customer.subscription.updated":
        return amendment_from_event(event)
    if kind == "customer.subscription.deleted":
        return cancellation_from_event(event)
    if kind == "invoice.finalized":
        return invoice_finalized_from_event(event)
    if kind in ("invoice.paid", "invoice.payment_failed"):
        return payment_from_event(event)
    if kind == "credit_note.created":
        return credit_note_from_event(event, fetch_invoice)
    return []
