"""What the Stripe sandbox does: objects in Stripe's 2025-03-31.basil shapes, and their events.

Views (HTTP) and the simulator (billing clock) both call these functions inside a
transaction; each write records the events Stripe would send for it.

Assumptions, labelled as the API reference asks ([U] = not confirmed in Stripe's docs):
- [U] a new subscription is `active` at once (a sandbox customer always has a working card);
  its first invoice is created and finalized with the subscription and paid by the billing
  clock (`simulate.advance_billing`).
- [U] cancelling an already cancelled subscription answers 400 invalid_request_error.
- [U] a meter event with an identifier seen before is answered with the first event, not counted twice.
- [U] events caused by a DELETE carry the request's Idempotency-Key like POSTs do.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from sandboxes.db import DB
from sandboxes.kit.faults import failing_record, fault_config
from sync.connectors.stripe import mapper

from .models import Counter, SandboxEvent, StripeObject
from .params import ParamError, as_bool, as_int, as_list, as_metadata, only

SYSTEM = "stripe"
DOC = "https://stripe.com/docs/error-codes"
INTERVAL_SECONDS = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400}  # [U] calendar months simplified
_ALPHABET = string.ascii_letters + string.digits


class StripeError(Exception):
    """An API error in Stripe's own terms."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str = "", param: str = ""):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> dict:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"{DOC}/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if self.status != 401:  # Stripe links the request log only for authenticated requests
            error["request_log_url"] = "https://dashboard.stripe.com/test/logs"
        return {"error": error}


def missing(kind: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def invalid(message: str, param: str = "", code: str = "parameter_invalid_empty") -> StripeError:
    return StripeError(400, message, code=code if param else "", param=param)


def from_param_error(exc: ParamError) -> StripeError:
    code = "parameter_unknown" if exc.args[0].startswith("Received unknown parameter") else "parameter_invalid_integer" if "integer" in exc.args[0] else ""
    return StripeError(400, exc.args[0], code=code, param=exc.param)


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"


def now_ts() -> int:
    return int(time.time())


def require(params: dict, name: str, prefix: str = "") -> Any:
    if params.get(name) in (None, ""):
        raise StripeError(
            400,
            f"Missing required param: {prefix}{'[' + name + ']' if prefix else name}.",
            code="parameter_missing",
            param=f"{prefix}[{name}]" if prefix else name,
        )
    return params[name]


def check_fail_records(param: str, *keys: str) -> None:
    hit = failing_record(SYSTEM, *keys)
    if hit:
        raise StripeError(400, f"Invalid value for {param}: {hit!r} was rejected (sandbox fail_records).", param=param)


def currency_of(value, param: str = "currency") -> str:
    code = str(value or "").lower()
    if not re.fullmatch(r"[a-z]{3}", code):
        raise StripeError(
            400,
            f"Invalid currency: {value}. Stripe currently supports these currencies: usd, eur, gbp, jpy, …",
            code="parameter_invalid_empty" if not code else "",
            param=param,
        )
    return code


# --- storage --------------------------------------------------------------------------------
def get(object_type: str, object_id: str, *, param: str = "id", label: str | None = None, lock: bool = False) -> StripeObject:
    qs = StripeObject.objects.filter(object=object_type, id=object_id)
    if lock:
        qs = qs.select_for_update()
    row = qs.first()
    if row is None:
        raise missing(label or object_type.replace("_", " "), object_id, param)
    return row


def save(row: StripeObject) -> StripeObject:
    data = row.data
    row.customer = data.get("customer") or "" if isinstance(data.get("customer"), str) else row.customer
    row.email = data.get("email") or "" if row.object == "customer" else row.email
    row.hub_id = (data.get("metadata") or {}).get("hub_id", "") if isinstance(data.get("metadata"), dict) else ""
    row.save()
    return row


def insert(object_type: str, data: dict, *, idempotency_key: str = "", subscription: str = "", lookup: str = "", state: dict | None = None) -> StripeObject:
    row = StripeObject(
        id=data["id"],
        object=object_type,
        created=data.get("created") or now_ts(),
        data=data,
        idempotency_key=idempotency_key or "",
        subscription=subscription,
        lookup=lookup,
        state=state or {},
    )
    try:
        with transaction.atomic(using=DB):  # two concurrent creates of one custom id: the loser gets Stripe's 400, not a 500
            return save(row)
    except IntegrityError:
        raise StripeError(400, f"{object_type.replace('_', ' ').capitalize()} already exists.", code="resource_already_exists", param="id") from None


def next_number(name: str) -> int:
    counter, _ = Counter.objects.get_or_create(name=name)
    Counter.objects.filter(pk=counter.pk).update(value=F("value") + 1)
    counter.refresh_from_db()
    return counter.value


# --- events ---------------------------------------------------------------------------------
class RequestInfo:
    """Who caused a change: an API request (id + Idempotency-Key) or the billing clock (None)."""

    def __init__(self, request_id: str | None = None, idempotency_key: str | None = None):
        self.id, self.idempotency_key = request_id, idempotency_key

    def as_dict(self) -> dict:
        return {"id": self.id, "idempotency_key": self.idempotency_key}


AUTOMATIC = RequestInfo()


def record_event(event_type: str, obj: dict, request: RequestInfo, previous: dict | None = None, *, created: int | None = None) -> str:
    event = {
        "id": new_id("evt"),
        "object": "event",
        "api_version": settings.CONNECTORS["stripe"]["api_version"],
        "created": created or now_ts(),
        "data": {"object": obj, **({"previous_attributes": previous} if previous is not None else {})},
        "livemode": False,
        "pending_webhooks": 1,
        "request": request.as_dict(),
        "type": event_type,
    }
    SandboxEvent.objects.create(
        id=event["id"], type=event_type, created=event["created"], data=event, next_attempt_at=timezone.now()
    )  # due now, even when the billing clock runs ahead
    return event["id"]


def event_json(row: SandboxEvent) -> dict:
    return {**row.data, "pending_webhooks": 0 if row.delivery != SandboxEvent.Delivery.PENDING else 1}


# --- customers --------------------------------------------------------------------------------
CUSTOMER_PARAMS = {
    "name",
    "email",
    "description",
    "metadata",
    "phone",
    "address",
    "preferred_locales",
    "tax_exempt",
    "invoice_prefix",
    "shipping",
    "expand",
    "invoice_settings",
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _customer_fields(params: dict, data: dict) -> None:
    if "email" in params:
        email = params["email"] or None
        if email and not EMAIL.match(email):
            raise StripeError(400, f"Invalid email address: {email}", code="email_invalid", param="email")
        data["email"] = email
    for name in ("name", "description", "phone"):
        if name in params:
            data[name] = params[name] or None
    if "tax_exempt" in params:
        if params["tax_exempt"] not in ("none", "exempt", "reverse"):
            raise invalid("Invalid tax_exempt: must be one of none, exempt, or reverse", "tax_exempt")
        data["tax_exempt"] = params["tax_exempt"]
    if "address" in params and isinstance(params["address"], dict):
        data["address"] = {k: params["address"].get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")}


def create_customer(params: dict, request: RequestInfo) -> dict:
    only(params, CUSTOMER_PARAMS)
    if params.get("email"):
        check_fail_records("email", params["email"])
    if params.get("name"):
        check_fail_records("name", params["name"])
    cid = new_id("cus", 14)
    data = {
        "id": cid,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now_ts(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": params.get("invoice_prefix") or "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None, "rendering_options": None},
        "livemode": False,
        "metadata": as_metadata(params.get("metadata")),
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": as_list(params.get("preferred_locales"), "preferred_locales"),
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    _customer_fields(params, data)
    insert("customer", data, idempotency_key=request.idempotency_key or "")
    record_event("customer.created", data, request)
    return data


def update_customer(customer_id: str, params: dict, request: RequestInfo) -> dict:
    only(params, CUSTOMER_PARAMS)
    row = get("customer", customer_id, label="customer", lock=True)
    data, before = row.data, dict(row.data)
    if params.get("email"):
        check_fail_records("email", params["email"])
    if params.get("name"):
        check_fail_records("name", params["name"])
    _customer_fields(params, data)
    if "metadata" in params:
        data["metadata"] = merge_metadata(data.get("metadata") or {}, params["metadata"])
    save(row)
    previous = {k: before.get(k) for k in data if before.get(k) != data.get(k)}
    if previous:
        record_event("customer.updated", data, request, previous)
    return data


def merge_metadata(current: dict, update) -> dict:
    """Stripe: metadata keys merge; an empty value deletes the key; metadata='' clears all."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in as_metadata(update).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


SEARCH_CLAUSE = re.compile(r"""^\s*(metadata\[['"]([^'"]+)['"]\]|email|name)\s*:\s*['"]([^'"]*)['"]\s*$""")


def search_customers(query: str) -> list[dict]:
    """Stripe's search query language, the part the connector uses: clauses joined with AND.
    Real search is eventually consistent ("under normal operating conditions, data is searchable in
    less than a minute"); the sandbox is immediate unless the fault `search_lag_seconds` is set, then
    a customer is found only that long after it was created (list and retrieve stay immediate)."""
    if not query:
        raise StripeError(400, "Missing required param: query.", code="parameter_missing", param="query")
    rows = StripeObject.objects.filter(object="customer")
    lag = fault_config("stripe").search_lag_seconds
    if lag:
        rows = rows.filter(created__lte=int(time.time()) - lag)
    for clause in re.split(r"\s+AND\s+", query.strip()):
        match = SEARCH_CLAUSE.match(clause)
        if not match:
            raise StripeError(400, f"Invalid query: unsupported clause {clause!r}. Use field:'value' clauses joined with AND.", param="query")
        field, meta_key, value = match.groups()
        if meta_key == "hub_id":
            rows = rows.filter(hub_id=value)
        elif meta_key:
            rows = rows.filter(**{f"data__metadata__{meta_key}": value})
        elif field == "email":
            rows = rows.filter(email=value)
        else:
            rows = rows.filter(data__name=value)
    return [row.data for row in rows.order_by("-seq")[:100]]


# --- products and prices ------------------------------------------------------------------------
PRODUCT_PARAMS = {
    "id",
    "name",
    "active",
    "description",
    "metadata",
    "tax_code",
    "unit_label",
    "images",
    "url",
    "statement_descriptor",
    "expand",
    "default_price_data",
}


def create_product(params: dict, request: RequestInfo) -> dict:
    only(params, PRODUCT_PARAMS)
    name = require(params, "name")
    metadata = as_metadata(params.get("metadata"))
    product_id = params.get("id") or new_id("prod", 14)
    check_fail_records("id", product_id, metadata.get("sku", ""))
    if StripeObject.objects.filter(id=product_id).exists():
        raise StripeError(400, "Product already exists.", code="resource_already_exists", param="id")
    ts = now_ts()
    data = {
        "id": product_id,
        "object": "product",
        "active": as_bool(params.get("active", True), "active"),
        "created": ts,
        "default_price": None,
        "description": params.get("description") or None,
        "images": as_list(params.get("images"), "images"),
        "livemode": False,
        "marketing_features": [],
        "metadata": metadata,
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": params.get("statement_descriptor") or None,
        "tax_code": params.get("tax_code") or None,
        "type": "service",
        "unit_label": params.get("unit_label") or None,
        "updated": ts,
        "url": params.get("url") or None,
    }
    insert("product", data, idempotency_key=request.idempotency_key or "")
    record_event("product.created", data, request)
    return data


def build_price(params: dict, param: str, request: RequestInfo, *, recurring_required: bool, inline: bool) -> dict:
    """A Price from /v1/prices params or from an inline `price_data` hash."""
    allowed = {"currency", "product", "unit_amount", "unit_amount_decimal", "recurring", "tax_behavior"}
    if not inline:
        allowed |= {"nickname", "metadata", "lookup_key", "active", "product_data", "billing_scheme", "expand"}
    only(params, allowed, param)
    currency = currency_of(require(params, "currency", param), f"{param}[currency]" if param else "currency")
    product = params.get("product")
    if not product and not inline and isinstance(params.get("product_data"), dict):
        product = create_product({"name": params["product_data"].get("name", "")}, request)["id"]
    product = product or require(params, "product", param)
    get("product", product, param=f"{param}[product]" if param else "product", label="product")
    if "unit_amount" in params and "unit_amount_decimal" in params:
        raise invalid("You may only specify one of these parameters: unit_amount, unit_amount_decimal.", f"{param}[unit_amount]" if param else "unit_amount")
    if params.get("unit_amount_decimal") not in (None, ""):
        try:
            decimal_amount = Decimal(str(params["unit_amount_decimal"]))
        except Exception:  # noqa: BLE001
            raise invalid(f"Invalid decimal: {params['unit_amount_decimal']}", f"{param}[unit_amount_decimal]") from None
        unit_amount = int(decimal_amount) if decimal_amount == decimal_amount.to_integral_value() else None
        unit_amount_decimal = format(decimal_amount.normalize(), "f") if unit_amount is None else str(unit_amount)
    else:
        unit_amount = as_int(require(params, "unit_amount", param), f"{param}[unit_amount]" if param else "unit_amount", minimum=0)
        unit_amount_decimal = str(unit_amount)
    recurring = None
    if params.get("recurring") not in (None, ""):
        raw = params["recurring"]
        only(
            raw, {"interval", "interval_count", "usage_type", "meter", "aggregate_usage", "trial_period_days"}, f"{param}[recurring]" if param else "recurring"
        )
        interval = require(raw, "interval", f"{param}[recurring]" if param else "recurring")
        if interval not in INTERVAL_SECONDS:
            raise invalid(
                "Invalid recurring[interval]: must be one of day, month, week, or year", f"{param}[recurring][interval]" if param else "recurring[interval]"
            )
        recurring = {
            "interval": interval,
            "interval_count": as_int(raw.get("interval_count", 1), "recurring[interval_count]", minimum=1),
            "meter": raw.get("meter") or None,
            "usage_type": raw.get("usage_type") or "licensed",
            "trial_period_days": None,
        }
    elif recurring_required:
        raise StripeError(400, f"Missing required param: {param}[recurring].", code="parameter_missing", param=f"{param}[recurring]")
    metadata = as_metadata(params.get("metadata")) if not inline else {}
    data = {
        "id": new_id("price"),
        "object": "price",
        "active": not inline,
        "billing_scheme": "per_unit",
        "created": now_ts(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": params.get("lookup_key") or None,
        "metadata": metadata,
        "nickname": params.get("nickname") or None,
        "product": product,
        "recurring": recurring,
        "tax_behavior": params.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount_decimal,
    }
    insert("price", data, idempotency_key=request.idempotency_key or "")
    return data


def create_price(params: dict, request: RequestInfo) -> dict:
    data = build_price(params, "", request, recurring_required=False, inline=False)
    record_event("price.created", data, request)
    return data


# --- subscriptions ------------------------------------------------------------------------------
SUBSCRIPTION_CREATE_PARAMS = {
    "customer",
    "items",
    "metadata",
    "currency",
    "add_invoice_items",
    "proration_behavior",
    "payment_behavior",
    "collection_method",
    "days_until_due",
    "description",
    "default_payment_method",
    "billing_cycle_anchor",
    "cancel_at_period_end",
    "expand",
    "off_session",
    "automatic_tax",
    "default_tax_rates",
    "trial_period_days",
}
SUBSCRIPTION_UPDATE_PARAMS = {
    "items",
    "metadata",
    "proration_behavior",
    "proration_date",
    "cancel_at_period_end",
    "cancellation_details",
    "description",
    "payment_behavior",
    "collection_method",
    "days_until_due",
    "default_payment_method",
    "expand",
    "off_session",
    "cancel_at",
    "default_tax_rates",
    "billing_cycle_anchor",
}
ITEM_PARAMS = {"id", "price", "price_data", "quantity", "metadata", "deleted", "clear_usage", "tax_rates", "discounts"}


def _price_for_item(raw: dict, param: str, currency: str | None, request: RequestInfo) -> dict:
    if raw.get("price") and raw.get("price_data"):
        raise invalid("You may only specify one of these parameters: price, price_data.", f"{param}[price]")
    if raw.get("price"):
        price = get("price", raw["price"], param=f"{param}[price]", label="price").data
    elif raw.get("price_data"):
        if not isinstance(raw["price_data"], dict):
            raise invalid("Invalid hash", f"{param}[price_data]")
        price = build_price(raw["price_data"], f"{param}[price_data]", request, recurring_required=True, inline=True)
    else:
        raise StripeError(400, f"Missing required param: {param}[price].", code="parameter_missing", param=f"{param}[price]")
    if not price.get("recurring"):
        raise invalid("The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.", f"{param}[price]")
    if currency and price["currency"] != currency:
        raise invalid(
            f"The price specified uses currency `{price['currency']}` but this subscription uses `{currency}`; all prices must use the same currency.",
            f"{param}[price]",
        )
    return price


def _new_item(subscription_id: str, price: dict, quantity: int, metadata: dict, period: tuple[int, int]) -> dict:
    return {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": now_ts(),
        "current_period_end": period[1],
        "current_period_start": period[0],
        "discounts": [],
        "metadata": metadata,
        "price": price,
        "quantity": quantity,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def _period_end(start: int, price: dict) -> int:
    recurring = price.get("recurring") or {}
    return start + INTERVAL_SECONDS.get(recurring.get("interval", "month"), INTERVAL_SECONDS["month"]) * int(recurring.get("interval_count") or 1)


def _items_list(subscription_id: str, items: list[dict]) -> dict:
    return {"object": "list", "data": items, "has_more": False, "total_count": len(items), "url": f"/v1/subscription_items?subscription={subscription_id}"}


def create_subscription(params: dict, request: RequestInfo) -> dict:
    only(params, SUBSCRIPTION_CREATE_PARAMS)
    customer_id = require(params, "customer")
    customer = get("customer", customer_id, param="customer", label="customer", lock=True)
    raw_items = as_list(params.get("items"), "items")
    if not raw_items:
        raise StripeError(400, "Missing required param: items.", code="parameter_missing", param="items")
    metadata = as_metadata(params.get("metadata"))
    if metadata.get("order_number"):
        check_fail_records("metadata[order_number]", metadata["order_number"])
    currency = currency_of(params["currency"]) if params.get("currency") else None
    sub_id = new_id("sub")
    start = now_ts()
    items, skus = [], set()
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise invalid("Invalid hash", f"items[{i}]")
        only(raw, ITEM_PARAMS - {"id", "deleted", "clear_usage"}, f"items[{i}]")
        price = _price_for_item(raw, f"items[{i}]", currency, request)
        check_fail_records(f"items[{i}][price_data][product]", price["product"])
        currency = currency or price["currency"]
        if price["id"] in skus:
            raise invalid("Cannot add multiple subscription items with the same price.", f"items[{i}][price]")
        skus.add(price["id"])
        if _metered(price) and raw.get("quantity") not in (None, ""):
            raise invalid(
                "You cannot set the quantity of a subscription item with a metered price: usage is reported as meter events.", f"items[{i}][quantity]"
            )
        quantity = None if _metered(price) else as_int(raw.get("quantity", 1), f"items[{i}][quantity]", minimum=0)
        items.append(_new_item(sub_id, price, quantity, as_metadata(raw.get("metadata"), f"items[{i}][metadata]"), (start, _period_end(start, price))))
    if customer.data.get("currency") and customer.data["currency"] != currency:
        raise invalid(
            f"You cannot combine currencies on a single customer. This customer has had a subscription or payment in {customer.data['currency']}, but you are trying to pay in {currency}.",
            "currency",
        )
    extra_lines = []
    for i, raw in enumerate(as_list(params.get("add_invoice_items"), "add_invoice_items")):
        only(raw, {"price", "price_data", "quantity", "metadata"}, f"add_invoice_items[{i}]")
        if raw.get("price"):
            price = get("price", raw["price"], param=f"add_invoice_items[{i}][price]", label="price").data
        else:
            price = build_price(
                require(raw, "price_data", f"add_invoice_items[{i}]"), f"add_invoice_items[{i}][price_data]", request, recurring_required=False, inline=True
            )
        quantity = as_int(raw.get("quantity", 1), f"add_invoice_items[{i}][quantity]", minimum=1)
        extra_lines.append(
            {"price": price, "quantity": quantity, "amount": int(Decimal(price["unit_amount_decimal"]) * quantity), "description": None, "proration": False}
        )
    collection = params.get("collection_method") or "charge_automatically"
    data = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": start,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"},
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection,
        "created": start,
        "currency": currency,
        "customer": customer_id,
        "days_until_due": as_int(params["days_until_due"], "days_until_due") if params.get("days_until_due") else None,
        "default_payment_method": params.get("default_payment_method") or None,
        "default_source": None,
        "default_tax_rates": [],
        "description": params.get("description") or None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": _items_list(sub_id, items),
        "latest_invoice": None,
        "livemode": False,
        "metadata": metadata,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None, "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": start,
        "status": "active",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }
    if not customer.data.get("currency"):
        customer.data["currency"] = currency
        save(customer)
    row = insert("subscription", data, idempotency_key=request.idempotency_key or "", subscription=sub_id)
    record_event("customer.subscription.created", data, request)
    invoice = create_invoice_for(row, "subscription_create", request, period=(start, start), extra_lines=extra_lines, recurring=True)
    data["latest_invoice"] = invoice["id"]
    row.data = data
    save(row)
    return data


def _metered(price: dict) -> bool:
    return (price.get("recurring") or {}).get("usage_type") == "metered"


def _item_amount(item: dict) -> Decimal:
    """A licensed item's charge for one period; metered items bill usage, [U] which the sandbox does not invoice."""
    if _metered(item["price"]):
        return Decimal(0)
    return Decimal(item["price"]["unit_amount_decimal"]) * int(item.get("quantity") or 0)


def _proration_lines(old: dict | None, new: dict | None, now: int) -> list[dict]:
    """Stripe's two lines per change: credit for unused time on the old, charge for the remainder on the new."""
    ref = new or old
    start, end = ref["current_period_start"], ref["current_period_end"]
    fraction = Decimal(max(0, end - now)) / Decimal(max(1, end - start))
    lines = []
    if old is not None and _item_amount(old):
        lines.append(
            {
                "price": old["price"],
                "quantity": old["quantity"],
                "proration": True,
                "subscription_item": old["id"],
                "description": f"Unused time on {old['quantity']} × {old['price']['product']}",
                "amount": -int((_item_amount(old) * fraction).quantize(Decimal(1), rounding=ROUND_HALF_UP)),
                "period": (now, end),
            }
        )
    if new is not None and _item_amount(new):
        lines.append(
            {
                "price": new["price"],
                "quantity": new["quantity"],
                "proration": True,
                "subscription_item": new["id"],
                "description": f"Remaining time on {new['quantity']} × {new['price']['product']}",
                "amount": int((_item_amount(new) * fraction).quantize(Decimal(1), rounding=ROUND_HALF_UP)),
                "period": (now, end),
            }
        )
    return lines


def update_subscription(subscription_id: str, params: dict, request: RequestInfo) -> dict:
    only(params, SUBSCRIPTION_UPDATE_PARAMS)
    row = get("subscription", subscription_id, label="subscription", lock=True)
    data = row.data
    before = {
        "items": _items_list(subscription_id, [dict(i) for i in data["items"]["data"]]),
        "metadata": dict(data.get("metadata") or {}),
        "cancel_at_period_end": data.get("cancel_at_period_end"),
        "cancel_at": data.get("cancel_at"),
        "cancellation_details": dict(data.get("cancellation_details") or {}),
        "description": data.get("description"),
    }
    if data["status"] in ("canceled", "incomplete_expired") and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
            next(iter(set(params) - {"metadata", "cancellation_details", "expand"})),
        )
    behavior = params.get("proration_behavior") or "create_prorations"
    if behavior not in ("create_prorations", "none", "always_invoice"):
        raise invalid("Invalid proration_behavior: must be one of always_invoice, create_prorations, or none", "proration_behavior")
    now = as_int(params["proration_date"], "proration_date") if params.get("proration_date") else now_ts()
    items = [dict(i) for i in data["items"]["data"]]
    prorations: list[dict] = []
    if "metadata" in params:
        data["metadata"] = merge_metadata(data.get("metadata") or {}, params["metadata"])
        if data["metadata"].get("order_number"):
            check_fail_records("metadata[order_number]", data["metadata"]["order_number"])
    for i, raw in enumerate(as_list(params.get("items"), "items")):
        param = f"items[{i}]"
        if not isinstance(raw, dict):
            raise invalid("Invalid hash", param)
        only(raw, ITEM_PARAMS, param)
        current = next((it for it in items if it["id"] == raw.get("id")), None) if raw.get("id") else None
        if raw.get("id") and current is None:
            raise invalid(f"Invalid subscription_item id: {raw['id']}", f"{param}[id]", code="resource_missing")
        if current is not None and as_bool(raw.get("deleted", False), f"{param}[deleted]"):
            items.remove(current)
            prorations += _proration_lines(current, None, now)
            continue
        if current is None:
            price = _price_for_item(raw, param, data["currency"], request)
            check_fail_records(f"{param}[price_data][product]", price["product"])
            ref = items[0] if items else None
            period = (ref["current_period_start"], ref["current_period_end"]) if ref else (now, _period_end(now, price))
            item = _new_item(
                subscription_id,
                price,
                as_int(raw.get("quantity", 1), f"{param}[quantity]", minimum=0),
                as_metadata(raw.get("metadata"), f"{param}[metadata]"),
                period,
            )
            items.append(item)
            prorations += _proration_lines(None, item, now)
            continue
        updated = dict(current)
        if raw.get("price") or raw.get("price_data"):
            updated["price"] = _price_for_item(raw, param, data["currency"], request)
        if "quantity" in raw:
            updated["quantity"] = as_int(raw["quantity"], f"{param}[quantity]", minimum=0)
        if "metadata" in raw:
            updated["metadata"] = merge_metadata(current.get("metadata") or {}, raw["metadata"])
        if (updated["price"]["id"], updated["quantity"]) != (current["price"]["id"], current["quantity"]):
            prorations += _proration_lines(current, updated, now)
        items[items.index(current)] = updated
    if not items and data["status"] != "canceled":
        raise invalid(
            "A subscription must have at least one active plan. To cancel a subscription, please use the cancel API endpoint on /v1/subscriptions.", "items"
        )
    data["items"] = _items_list(subscription_id, items)
    if "cancel_at_period_end" in params:
        data["cancel_at_period_end"] = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
        data["cancel_at"] = items[0]["current_period_end"] if data["cancel_at_period_end"] and items else None
    if isinstance(params.get("cancellation_details"), dict):
        only(params["cancellation_details"], {"comment", "feedback"}, "cancellation_details")
        data["cancellation_details"] = {**(data.get("cancellation_details") or {}), **{k: v or None for k, v in params["cancellation_details"].items()}}
    if "description" in params:
        data["description"] = params["description"] or None
    if behavior != "none" and prorations:
        pending = row.state.get("pending_lines", [])
        pending.extend({**line, "period": list(line["period"])} for line in prorations)
        row.state["pending_lines"] = pending
    row.data = data
    save(row)
    previous = {k: v for k, v in before.items() if data.get(k) != v}
    if "items" in previous and [(i["id"], i["price"]["id"], i["quantity"]) for i in previous["items"]["data"]] == [
        (i["id"], i["price"]["id"], i["quantity"]) for i in items
    ]:
        previous.pop("items")
    if previous:
        record_event("customer.subscription.updated", data, request, previous)
    if behavior == "always_invoice" and row.state.get("pending_lines"):
        invoice = create_invoice_for(row, "subscription_update", request, period=(now, now), recurring=False)
        data["latest_invoice"] = invoice["id"]
        row.data = data
        save(row)
    return data


def cancel_subscription(subscription_id: str, params: dict, request: RequestInfo, *, when: int | None = None) -> dict:
    only(params, {"cancellation_details", "invoice_now", "prorate", "expand"})
    row = get("subscription", subscription_id, label="subscription", lock=True)
    data = row.data
    if data["status"] == "canceled":
        raise invalid(f"This subscription has already been canceled: '{subscription_id}'.", "subscription")  # [U]
    ts = when or now_ts()
    if isinstance(params.get("cancellation_details"), dict):
        only(params["cancellation_details"], {"comment", "feedback"}, "cancellation_details")
        data["cancellation_details"] = {**(data.get("cancellation_details") or {}), **{k: v or None for k, v in params["cancellation_details"].items()}}
    data["cancellation_details"]["reason"] = "cancellation_requested" if request.id else data["cancellation_details"].get("reason") or "cancellation_requested"
    data.update({"status": "canceled", "canceled_at": data.get("canceled_at") or ts, "ended_at": ts, "cancel_at_period_end": False})
    row.data = data
    save(row)
    record_event("customer.subscription.deleted", data, request, created=ts)
    return data


# --- invoices -------------------------------------------------------------------------------------
def _line(invoice_id: str, subscription_id: str, source: dict, currency: str) -> dict:
    price = source["price"]
    period = source.get("period") or (source.get("current_period_start"), source.get("current_period_end"))
    item_id = source.get("subscription_item") or (source.get("id") if source.get("object") == "subscription_item" else None)
    amount = source["amount"] if "amount" in source else int(_item_amount(source))
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": source.get("description")
        or f"{source['quantity']} × {price['product']} (at {mapper.to_major(price['unit_amount_decimal'], currency)} {currency.upper()} / {(price.get('recurring') or {}).get('interval', 'once')})",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": dict(source.get("metadata") or {}) if source.get("object") == "subscription_item" else {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": bool(source.get("proration")),
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": item_id,
            },
            "type": "subscription_item_details",
        }
        if item_id
        else {
            "invoice_item_details": {
                "invoice_item": new_id("ii"),
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        },
        "period": {"end": period[1], "start": period[0]},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": source["quantity"],
        "taxes": [],
    }


def create_invoice_for(
    sub_row: StripeObject,
    billing_reason: str,
    request: RequestInfo,
    *,
    period: tuple[int, int],
    extra_lines: list[dict] | None = None,
    recurring: bool = True,
    created: int | None = None,
) -> dict:
    """Create and finalize the subscription's invoice: recurring items (if `recurring`), pending
    prorations and one-off lines. Records invoice.created and invoice.finalized."""
    sub = sub_row.data
    customer = get("customer", sub["customer"], label="customer").data
    currency = sub["currency"]
    invoice_id = new_id("in")
    ts = created or now_ts()
    sources = [dict(item) for item in sub["items"]["data"] if not _metered(item["price"])] if recurring else []
    sources += [dict(line) for line in sub_row.state.pop("pending_lines", [])]
    sources += list(extra_lines or [])
    lines = [_line(invoice_id, sub["id"], s, currency) for s in sources]
    total = sum(line["amount"] for line in lines)
    number = f"{customer['invoice_prefix']}-{next_number('invoice:' + customer['invoice_prefix']):04d}"
    due = ts + int(sub.get("days_until_due") or 0) * 86400 if sub.get("collection_method") == "send_invoice" else None
    invoice = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Q2C Sandbox Inc.",
        "account_tax_ids": None,
        "amount_due": max(total, 0),
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": max(total, 0),
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "provider": None, "status": None},
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": sub.get("collection_method", "charge_automatically"),
        "confirmation_secret": None,
        "created": ts,
        "currency": currency,
        "custom_fields": None,
        "customer": sub["customer"],
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": None,
        "customer_tax_exempt": customer.get("tax_exempt", "none"),
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": due,
        "effective_at": ts,
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_sandbox/test_{invoice_id}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_sandbox/test_{invoice_id}/pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": lines, "has_more": False, "total_count": len(lines), "url": f"/v1/invoices/{invoice_id}/lines"},
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": ts + 3600 if total > 0 else None,
        "number": number,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": dict(sub.get("metadata") or {}), "subscription": sub["id"]},
            "type": "subscription_details",
        },
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": period[1],
        "period_start": period[0],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None, "voided_at": None},
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": ts,
    }
    record_event("invoice.created", dict(invoice), request, created=ts)
    invoice["status"] = "open"
    invoice["status_transitions"] = {**invoice["status_transitions"], "finalized_at": ts}
    if total <= 0:  # nothing to collect: Stripe marks it paid at once
        invoice["status"] = "paid"
        invoice["status_transitions"]["paid_at"] = ts
        invoice["next_payment_attempt"] = None
    insert("invoice", invoice, idempotency_key=request.idempotency_key or "", subscription=sub["id"])
    record_event("invoice.finalized", invoice, request, created=ts)
    if invoice["status"] == "paid":
        record_event("invoice.paid", invoice, request, created=ts)
    return invoice


def settle_invoice(invoice_id: str, *, succeed: bool, when: int | None = None, max_attempts: int = 4) -> list[str]:
    """One automatic payment attempt on an open invoice (the billing clock's card charge)."""
    row = get("invoice", invoice_id, label="invoice", lock=True)
    invoice = row.data
    if invoice["status"] != "open":
        return []
    ts = when or now_ts()
    invoice["attempt_count"] = int(invoice.get("attempt_count") or 0) + 1
    invoice["attempted"] = True
    events = []
    if succeed:
        invoice.update({"status": "paid", "amount_paid": invoice["amount_remaining"], "amount_remaining": 0, "next_payment_attempt": None})
        invoice["status_transitions"] = {**invoice["status_transitions"], "paid_at": ts}
        row.data = invoice
        save(row)
        events.append(record_event("invoice.payment_succeeded", invoice, AUTOMATIC, created=ts))
        events.append(record_event("invoice.paid", invoice, AUTOMATIC, created=ts))
        return events
    invoice["next_payment_attempt"] = ts + 3 * 86400 if invoice["attempt_count"] < max_attempts else None
    row.data = invoice
    save(row)
    events.append(record_event("invoice.payment_failed", invoice, AUTOMATIC, created=ts))
    if invoice["attempt_count"] >= max_attempts:
        invoice.update({"status": "uncollectible"})
        invoice["status_transitions"] = {**invoice["status_transitions"], "marked_uncollectible_at": ts}
        row.data = invoice
        save(row)
        events.append(record_event("invoice.marked_uncollectible", invoice, AUTOMATIC, created=ts))
    return events


# --- credit notes ----------------------------------------------------------------------------------
CREDIT_NOTE_PARAMS = {
    "invoice",
    "amount",
    "lines",
    "reason",
    "memo",
    "metadata",
    "credit_amount",
    "refund_amount",
    "out_of_band_amount",
    "effective_at",
    "expand",
    "email_type",
}
CREDIT_REASONS = {"duplicate", "fraudulent", "order_change", "product_unsatisfactory"}


def create_credit_note(params: dict, request: RequestInfo) -> dict:
    only(params, CREDIT_NOTE_PARAMS)
    invoice_row = get("invoice", require(params, "invoice"), param="invoice", label="invoice", lock=True)
    invoice = invoice_row.data
    if invoice["status"] not in ("open", "paid"):
        raise invalid(f"Invoice {invoice['id']} is not finalized: credit notes can only be issued for open or paid invoices.", "invoice")
    currency = invoice["currency"]
    if params.get("reason") and params["reason"] not in CREDIT_REASONS:
        raise invalid("Invalid reason: must be one of duplicate, fraudulent, order_change, or product_unsatisfactory", "reason")
    note_id = new_id("cn")
    lines, total = [], 0
    for i, raw in enumerate(as_list(params.get("lines"), "lines")):
        only(
            raw,
            {"type", "invoice_line_item", "quantity", "amount", "unit_amount", "unit_amount_decimal", "description", "tax_rates", "metadata"},
            f"lines[{i}]",
        )
        kind = require(raw, "type", f"lines[{i}]")
        if kind == "invoice_line_item":
            source = next((l for l in invoice["lines"]["data"] if l["id"] == raw.get("invoice_line_item")), None)
            if source is None:
                raise invalid(f"No such invoice line item: '{raw.get('invoice_line_item')}'", f"lines[{i}][invoice_line_item]", code="resource_missing")
            quantity = as_int(raw.get("quantity", source["quantity"]), f"lines[{i}][quantity]", minimum=0)
            amount = (
                as_int(raw["amount"], f"lines[{i}][amount]") if raw.get("amount") else int(Decimal(source["amount"]) * quantity / max(1, source["quantity"]))
            )
            description = source["description"]
        elif kind == "custom_line_item":
            quantity = as_int(raw.get("quantity", 1), f"lines[{i}][quantity]", minimum=1)
            amount = as_int(require(raw, "unit_amount", f"lines[{i}]"), f"lines[{i}][unit_amount]", minimum=0) * quantity
            description = require(raw, "description", f"lines[{i}]")
        else:
            raise invalid("Invalid type: must be one of invoice_line_item or custom_line_item", f"lines[{i}][type]")
        total += amount
        lines.append(
            {
                "id": new_id("cnli"),
                "object": "credit_note_line_item",
                "amount": amount,
                "description": description,
                "discount_amount": 0,
                "discount_amounts": [],
                "invoice_line_item": raw.get("invoice_line_item"),
                "livemode": False,
                "metadata": {},
                "pretax_credit_amounts": [],
                "quantity": quantity,
                "tax_rates": [],
                "taxes": [],
                "type": kind,
                "unit_amount": amount // max(1, quantity),
                "unit_amount_decimal": str(amount // max(1, quantity)),
            }
        )
    if params.get("amount") not in (None, ""):
        amount = as_int(params["amount"], "amount", minimum=1)
        if lines and amount != total:
            raise invalid(f"The amount ({amount}) must equal the sum of the lines ({total}).", "amount")
        if not lines:
            lines.append(
                {
                    "id": new_id("cnli"),
                    "object": "credit_note_line_item",
                    "amount": amount,
                    "description": params.get("memo") or "Credit",
                    "discount_amount": 0,
                    "discount_amounts": [],
                    "livemode": False,
                    "metadata": {},
                    "pretax_credit_amounts": [],
                    "quantity": 1,
                    "tax_rates": [],
                    "taxes": [],
                    "type": "custom_line_item",
                    "unit_amount": amount,
                    "unit_amount_decimal": str(amount),
                }
            )
        total = amount
    if total <= 0:
        raise StripeError(400, "Missing required param: lines.", code="parameter_missing", param="lines")
    credited = invoice.get("pre_payment_credit_notes_amount", 0) + invoice.get("post_payment_credit_notes_amount", 0)
    if credited + total > invoice["total"]:
        raise invalid(
            f"The credit note amount ({mapper.to_major(total, currency)} {currency.upper()}) exceeds the amount that can still be credited on invoice {invoice['number']} ({mapper.to_major(invoice['total'] - credited, currency)} {currency.upper()}).",
            "amount",
        )
    ts = now_ts()
    post_payment = invoice["status"] == "paid"
    number = f"{invoice['number']}-CN-{next_number('credit_note:' + invoice['id']):02d}"
    note = {
        "id": note_id,
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": ts,
        "currency": currency,
        "customer": invoice["customer"],
        "customer_balance_transaction": None,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": ts,
        "invoice": invoice["id"],
        "lines": {"object": "list", "data": lines, "has_more": False, "url": f"/v1/credit_notes/{note_id}/lines"},
        "livemode": False,
        "memo": params.get("memo") or None,
        "metadata": as_metadata(params.get("metadata")),
        "number": number,
        "out_of_band_amount": None,
        "pdf": f"https://pay.stripe.com/credit_notes/acct_sandbox/test_{note_id}/pdf",
        "post_payment_amount": total if post_payment else 0,
        "pre_payment_amount": 0 if post_payment else total,
        "pretax_credit_amounts": [],
        "reason": params.get("reason") or None,
        "refunds": [],
        "shipping_cost": None,
        "status": "issued",
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "total": total,
        "total_excluding_tax": total,
        "total_taxes": [],
        "type": "post_payment" if post_payment else "pre_payment",
        "voided_at": None,
    }
    insert("credit_note", note, idempotency_key=request.idempotency_key or "", subscription=invoice_row.subscription)
    key = "post_payment_credit_notes_amount" if post_payment else "pre_payment_credit_notes_amount"
    invoice[key] = invoice.get(key, 0) + total
    if not post_payment:
        invoice["amount_due"] = max(0, invoice["amount_due"] - total)
        invoice["amount_remaining"] = max(0, invoice["amount_remaining"] - total)
    invoice_row.data = invoice
    save(invoice_row)
    record_event("credit_note.created", note, request, created=ts)
    return note


# --- usage ------------------------------------------------------------------------------------------
def create_meter_event(params: dict, request: RequestInfo) -> dict:
    only(params, {"event_name", "payload", "identifier", "timestamp"})
    event_name = require(params, "event_name")
    payload = require(params, "payload")
    if not isinstance(payload, dict):
        raise invalid("Invalid hash", "payload")
    customer = require(payload, "stripe_customer_id", "payload")
    value = require(payload, "value", "payload")
    try:
        Decimal(str(value))
    except Exception:  # noqa: BLE001
        raise invalid(f"Invalid value: {value} is not a number", "payload[value]") from None
    check_fail_records("payload[stripe_customer_id]", customer)
    ts = as_int(params.get("timestamp") or now_ts(), "timestamp")
    if ts < now_ts() - 35 * 86400 or ts > now_ts() + 5 * 60:  # [U] documented window
        raise invalid("Timestamp must be within the past 35 days and not more than 5 minutes in the future.", "timestamp")
    identifier = params.get("identifier") or new_id("mev", 20)
    if len(identifier) > 100:
        raise invalid("Invalid identifier: must be at most 100 characters", "identifier")
    existing = StripeObject.objects.filter(object="billing.meter_event", lookup=identifier).first()
    if existing is not None:
        return existing.data  # [U] duplicate identifiers are not counted twice
    data = {
        "object": "billing.meter_event",
        "created": now_ts(),
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": {k: str(v) for k, v in payload.items()},
        "timestamp": ts,
    }
    row = StripeObject(
        id=f"mev:{identifier}",
        object="billing.meter_event",
        created=data["created"],
        data=data,
        customer=customer,
        lookup=identifier,
        idempotency_key=request.idempotency_key or "",
    )
    row.save()
    return data
