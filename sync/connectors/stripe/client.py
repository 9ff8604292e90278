"""Stripe Billing as the hub's billing connector, through the official `stripe` library.

- One `StripeClient` pinned to settings' API version and base URL (the sandbox locally),
  with the library's own retries off: the engine owns retries. The library's HTTP goes
  through `StripeHTTPClient`, its documented transport hook, which hands every request to
  `sync.connectors.http.send` — so a 429 with a short `Retry-After` is waited out (bounded)
  as Stripe asks, timeouts and call records work as for the other vendors, and the library
  itself is used unmodified.
- Every POST carries an `Idempotency-Key` derived from the engine's key with our prefix
  (`q2c-…`), so our own writes are recognisable when Stripe echoes them as events.
- Errors become ConnectorError in the design's classes (ERROR_CODES), carrying Stripe's
  message and param. Webhook signatures: `webhook.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import stripe
from django.conf import settings

from sync.canonical.charges import ChargeError, charge_of
from sync.connectors.errors import CodeTable, ConnectorError, classify
from sync.connectors.http import DEFAULT_WAITS, WaitPolicy, parse_retry_after, send
from sync.connectors.roles import BillingConnector, CallResult
from sync.models import ChargeType, ErrorClass

from . import mapper, webhook
from .mapper import ECHO_PREFIX, MappingError

log = logging.getLogger(__name__)

# Stripe's error codes and error types (docs.stripe.com/error-codes, /api/errors).
ERROR_CODES = CodeTable(
    {
        ErrorClass.RATE_LIMIT: {"rate_limit", "lock_timeout"},
        ErrorClass.NOT_FOUND: {"resource_missing"},
        ErrorClass.CONFLICT: {"idempotency_error"},  # an error *type*: a key reused with other parameters
        ErrorClass.DUPLICATE: {"resource_already_exists"},
    }
)
_operation: ContextVar[str] = ContextVar("stripe_operation", default="")  # names the call records of StripeConnector.call


def error_codes(response: requests.Response) -> tuple[str, str]:
    """(code, type) of a Stripe error body {"error": {"type", "code", …}}; "" where absent."""
    try:
        error = (response.json() or {}).get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    return (str(error.get("code") or ""), str(error.get("type") or "")) if isinstance(error, dict) else ("", "")


def _is_stripe_object(body: bytes) -> bool:
    """Every answer of Stripe's API is a JSON object naming its `object` (customer, list, search_result …)."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("object"), str)


class StripeHTTPClient(stripe.HTTPClient):
    """stripe-python's transport hook (`StripeClient(http_client=…)`): the library builds each
    request and reads each answer; the bytes travel through `sync.connectors.http.send`."""

    name = "requests"  # what the library reports as its HTTP library

    def __init__(self, *, timeout: float, waits: WaitPolicy = DEFAULT_WAITS):
        super().__init__()
        self.timeout = timeout
        self.waits = waits

    def _send(self, method: str, url: str, headers, post_data, *, stream: bool) -> requests.Response:
        if getattr(self._thread_local, "session", None) is None:  # one session per thread, as stripe.RequestsClient
            self._thread_local.session = requests.Session()
        operation = _operation.get() or f"{method.upper()} {urlsplit(url).path}"
        return send(
            self._thread_local.session,
            method,
            url,
            system="stripe",
            operation=operation,
            timeout=self.timeout,
            table=ERROR_CODES,
            code_of=error_codes,
            waits=self.waits,
            label="Stripe",
            headers=headers,
            data=post_data,
            stream=stream,
            verify=stripe.ca_bundle_path,
        )

    def request(self, method, url, headers, post_data=None):
        response = self._send(method, url, headers, post_data, stream=False)
        if response.status_code < 300 and not _is_stripe_object(response.content):
            # a 200 that is not Stripe's (a proxy's page, a truncated body): the library would hand the
            # flow an object without its fields. Transient — a write is repeated with its
            # Idempotency-Key (Stripe replays the first answer), a read is simply read again.
            raise ConnectorError(
                ErrorClass.UNAVAILABLE,
                f"Stripe answered {method.upper()} {urlsplit(url).path} with {response.status_code} and a body that is not a Stripe object",
                system="stripe",
                status_code=response.status_code,
            )
        return response.content, response.status_code, response.headers

    def request_stream(self, method, url, headers, post_data=None):
        response = self._send(method, url, headers, post_data, stream=True)
        return response.raw, response.status_code, response.headers

    def close(self):
        if getattr(self._thread_local, "session", None) is not None:
            self._thread_local.session.close()


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return dict(obj)


def _status(obj: Any) -> int | None:
    response = getattr(obj, "last_response", None)
    return getattr(response, "code", None) or (200 if obj is not None else None)


def _starts_at(sub: Mapping) -> datetime | None:
    """When the subscription starts billing (basil: `start_date`; the first invoice is issued then)."""
    ts = sub.get("start_date") or sub.get("billing_cycle_anchor") or sub.get("created")
    return datetime.fromtimestamp(int(ts), tz=UTC) if ts else None


def error_from_stripe(exc: stripe.StripeError) -> ConnectorError:
    """stripe-python's exception (its HTTP status, error code and type) → ConnectorError."""
    status = getattr(exc, "http_status", None)
    error = getattr(exc, "error", None)
    message = (getattr(error, "message", None) or getattr(exc, "user_message", None) or str(exc) or exc.__class__.__name__).strip()
    code = getattr(exc, "code", None) or getattr(error, "code", None) or ""
    param = getattr(exc, "param", None) or getattr(error, "param", None) or ""
    kind = getattr(error, "type", None) or ""
    body = getattr(exc, "json_body", None) or {}
    if status is None:  # no answer (timeouts and refused connections are raised by http.send before this)
        return ConnectorError(
            ErrorClass.UNAVAILABLE, f"cannot reach Stripe: {message.splitlines()[-1] if message else ''}".strip(), system="stripe", response=body
        )
    retry_after = parse_retry_after((getattr(exc, "headers", None) or {}).get("Retry-After"))
    return ConnectorError(
        classify(status, (code, kind), ERROR_CODES),
        message,
        system="stripe",
        field=param,
        code=code or kind,
        status_code=status,
        retry_after=retry_after,
        response=body,
    )


class StripeConnector(BillingConnector):
    system = "stripe"

    def __init__(
        self,
        *,
        api_base: str,
        api_key: str,
        webhook_secret: str,
        api_version: str,
        timeout: float = 20.0,
        max_rate_limit_wait: float = 30.0,
        max_rate_limit_attempts: int = 4,
    ):
        self.api_base = api_base.rstrip("/")
        self.api_version = api_version
        self.webhook_secret = webhook_secret
        self.client = stripe.StripeClient(
            api_key,
            stripe_version=api_version,
            base_addresses={"api": self.api_base},
            max_network_retries=0,  # the engine retries, with the same idempotency key
            http_client=StripeHTTPClient(timeout=timeout, waits=WaitPolicy(max_wait=max_rate_limit_wait, max_attempts=max_rate_limit_attempts)),
        )

    @classmethod
    def from_settings(cls) -> StripeConnector:
        config = settings.CONNECTORS["stripe"]
        return cls(
            api_base=config["api_base"],
            api_key=config["api_key"],
            webhook_secret=config["webhook_secret"],
            api_version=config["api_version"],
            timeout=getattr(settings, "CONNECTOR_TIMEOUT_SECONDS", 20.0),
        )

    # --- plumbing -----------------------------------------------------------------------
    def call(self, operation: str, fn: Callable, *args, **kwargs):
        """One API call, its requests recorded as `operation`; Stripe's errors become ConnectorError."""
        token = _operation.set(operation)
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise error_from_stripe(exc) from exc
        finally:
            _operation.reset(token)

    @staticmethod
    def key(idempotency_key: str, suffix: str = "") -> str:
        """Our Idempotency-Key: prefixed (echo detection), ≤ 255 characters."""
        base = idempotency_key if idempotency_key.startswith(ECHO_PREFIX) else f"{ECHO_PREFIX}{idempotency_key}"
        key = f"{base}:{suffix}" if suffix else base
        if len(key) > 255:
            key = f"{ECHO_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}"
        return key

    @staticmethod
    def _mapping(exc: MappingError, field: str = "") -> ConnectorError:
        return ConnectorError(ErrorClass.MAPPING, str(exc), system="stripe", field=field)

    def health(self) -> dict:
        self.call("customers.list", self.client.v1.customers.list, params={"limit": 1})
        return {"ok": True, "api_base": self.api_base, "api_version": self.api_version}

    # --- customers ------------------------------------------------------------------------
    def find_customer(self, *, hub_id: str, email: str = "") -> dict | None:
        """By metadata hub_id (search), then by email (list, strongly consistent) checking hub_id."""
        found = self.call("customers.search", self.client.v1.customers.search, params={"query": f"metadata['hub_id']:'{hub_id}'", "limit": 10})
        for customer in found.data:
            return _as_dict(customer)
        if email:
            listed = self.call("customers.list", self.client.v1.customers.list, params={"email": email, "limit": 100})
            for customer in map(_as_dict, listed.data):
                if (customer.get("metadata") or {}).get("hub_id") == hub_id:
                    return customer
        return None

    def upsert_customer(self, *, customer: dict, idempotency_key: str) -> CallResult:
        hub_id = str(customer.get("hub_id") or "")
        if not hub_id:
            raise ConnectorError(ErrorClass.VALIDATION, "customer has no hub_id", system="stripe", field="hub_id")
        metadata = {k: str(customer[k]) for k in ("hub_id", "crm_account_id", "legal_entity", "tax_id") if customer.get(k)}
        params: dict[str, Any] = {"name": customer.get("name") or "", "metadata": metadata}
        if customer.get("email"):
            params["email"] = customer["email"]
        existing = self.find_customer(hub_id=hub_id, email=customer.get("email") or "")
        if existing is None:
            created = self.call("customers.create", self.client.v1.customers.create, params=params, options={"idempotency_key": self.key(idempotency_key)})
            return CallResult(external_id=created.id, created=True, status_code=_status(created), raw=_as_dict(created))
        changed = {k: v for k, v in params.items() if k != "metadata" and existing.get(k) != v}
        if any((existing.get("metadata") or {}).get(k) != v for k, v in metadata.items()):
            changed["metadata"] = metadata
        if not changed:
            return CallResult(external_id=existing["id"], created=False, status_code=200, raw=existing)
        digest = hashlib.sha256(repr(sorted(changed.items())).encode()).hexdigest()[:12]
        updated = self.call(
            "customers.update",
            self.client.v1.customers.update,
            existing["id"],
            params=changed,
            options={"idempotency_key": self.key(idempotency_key, f"update-{digest}")},
        )
        return CallResult(external_id=updated.id, created=False, status_code=_status(updated), raw=_as_dict(updated))

    # --- products ---------------------------------------------------------------------------
    def ensure_product(self, *, sku: str, name: str, idempotency_key: str) -> str:
        """A Stripe product whose id is the SKU (created once)."""
        try:
            return self.call("products.retrieve", self.client.v1.products.retrieve, sku).id
        except ConnectorError as exc:
            if exc.error_class != ErrorClass.NOT_FOUND:
                raise
        try:
            product = self.call(
                "products.create",
                self.client.v1.products.create,
                params={"id": sku, "name": name or sku, "metadata": {"sku": sku}},
                options={"idempotency_key": self.key(idempotency_key, f"product-{sku}")},
            )
            return product.id
        except ConnectorError as exc:
            if exc.error_class == ErrorClass.DUPLICATE:  # created meanwhile by another flow
                return sku
            raise

    def _price_data(self, *, sku: str, unit_price: str, currency: str, interval: str | None) -> dict:
        try:
            minor = mapper.to_minor_decimal(unit_price, currency)
        except MappingError as exc:
            raise self._mapping(exc, "unit_price") from exc
        data: dict[str, Any] = {"currency": currency.lower(), "product": sku}
        if "." in minor:
            data["unit_amount_decimal"] = minor
        else:
            data["unit_amount"] = int(minor)
        if interval:
            data["recurring"] = {"interval": interval}
        return data

    # --- subscriptions ------------------------------------------------------------------------
    def _quantity(self, value, sku: str) -> int:
        try:
            return mapper.to_quantity(value)
        except MappingError as exc:
            raise ConnectorError(ErrorClass.MAPPING, f"{sku}: {exc}", system="stripe", field="quantity") from exc

    def find_subscription(self, *, customer_id: str, order_number: str) -> dict | None:
        listed = self.call("subscriptions.list", self.client.v1.subscriptions.list, params={"customer": customer_id, "status": "all", "limit": 100})
        for sub in map(_as_dict, listed.auto_paging_iter()):
            if (sub.get("metadata") or {}).get("order_number") == order_number and sub.get("status") not in ("canceled", "incomplete_expired"):
                return sub
        return None

    def create_subscription(self, *, customer_id: str, order: dict, idempotency_key: str) -> CallResult:
        order_number = str(order.get("order_number") or "")
        currency = str(order.get("currency") or "").upper()
        if not order_number or not currency:
            raise ConnectorError(
                ErrorClass.VALIDATION, "order needs order_number and currency", system="stripe", field="order_number" if not order_number else "currency"
            )
        existing = self.find_subscription(customer_id=customer_id, order_number=order_number)
        if existing is not None:
            return CallResult(external_id=existing["id"], created=False, status_code=200, raw=existing, starts_at=_starts_at(existing))
        items, one_time = [], []
        for i, line in enumerate(order.get("lines") or []):
            sku = str(line["sku"])
            try:
                charge = charge_of(line, i)
            except ChargeError as exc:
                raise ConnectorError(ErrorClass.MAPPING, exc.message, system="stripe", field=exc.field) from None
            self.ensure_product(sku=sku, name=line.get("description") or sku, idempotency_key=idempotency_key)
            if charge.charge_type == ChargeType.ONE_TIME:  # a one-time invoice item on the first invoice, not a subscription price
                one_time.append(
                    {
                        "price_data": self._price_data(sku=sku, unit_price=line["unit_price"], currency=currency, interval=None),
                        "quantity": self._quantity(line.get("quantity", "1"), sku),
                    }
                )
                continue
            if charge.charge_type == ChargeType.USAGE:  # a metered price: billed from meter events, no quantity
                price = self._metered_price(
                    sku=sku, unit_price=line["unit_price"], currency=currency, interval=line.get("interval") or "month", idempotency_key=idempotency_key
                )
                items.append({"price": price, "metadata": {"sku": sku}})
                continue
            price_data = self._price_data(sku=sku, unit_price=line["unit_price"], currency=currency, interval=charge.interval)
            if charge.interval_count != 1:
                price_data["recurring"]["interval_count"] = charge.interval_count
            items.append({"price_data": price_data, "quantity": self._quantity(line.get("quantity", "1"), sku), "metadata": {"sku": sku}})
        if not items:
            raise ConnectorError(
                ErrorClass.VALIDATION, f"order {order_number} has no recurring or usage lines for a subscription", system="stripe", field="lines"
            )
        metadata = {"order_number": order_number}
        for name, key in (("opportunity_id", "deal_id"), ("legal_entity", "legal_entity"), ("crm_record_id", "crm_record_id")):
            if order.get(key):
                metadata[name] = str(order[key])  # the CRM deal keeps its metadata name (order.closed_won.v2 deal_id, v1 opportunity_id)
        params: dict[str, Any] = {"customer": customer_id, "currency": currency.lower(), "items": items, "metadata": metadata}
        if one_time:
            params["add_invoice_items"] = one_time
        sub = self.call("subscriptions.create", self.client.v1.subscriptions.create, params=params, options={"idempotency_key": self.key(idempotency_key)})
        raw = _as_dict(sub)
        return CallResult(external_id=sub.id, created=True, status_code=_status(sub), raw=raw, starts_at=_starts_at(raw))

    def _metered_price(self, *, sku: str, unit_price: str, currency: str, interval: str, idempotency_key: str) -> str:
        """A metered price for a usage line (inline price_data cannot be metered)."""
        data = self._price_data(sku=sku, unit_price=unit_price, currency=currency, interval=interval)
        data["recurring"]["usage_type"] = "metered"
        price = self.call("prices.create", self.client.v1.prices.create, params=data, options={"idempotency_key": self.key(idempotency_key, f"price-{sku}")})
        return price.id

    def _retrieve_subscription(self, subscription_id: str) -> dict:
        return _as_dict(self.call("subscriptions.retrieve", self.client.v1.subscriptions.retrieve, subscription_id))

    def get_subscription(self, *, subscription_id: str) -> dict:
        return mapper.subscription_to_canonical(self._retrieve_subscription(subscription_id))

    def update_subscription(self, *, subscription_id: str, items: list[dict], idempotency_key: str, prorate: bool = True) -> CallResult:
        sub = self._retrieve_subscription(subscription_id)
        currency = sub.get("currency") or "usd"
        current = {mapper.item_sku(item): item for item in mapper.items_of(sub)}
        changes: list[dict] = []
        for wanted in items:
            sku = str(wanted["sku"])
            quantity = self._quantity(wanted.get("quantity", "1"), sku)
            item = current.get(sku)
            unit_price = wanted.get("unit_price")
            if item is None:
                if quantity == 0:
                    continue
                if unit_price in (None, ""):
                    raise ConnectorError(ErrorClass.MAPPING, f"{sku} is new on {subscription_id} and needs a unit_price", system="stripe", field="unit_price")
                try:
                    charge = charge_of(wanted, len(changes), prefix="items")
                except ChargeError as exc:
                    raise ConnectorError(ErrorClass.MAPPING, exc.message, system="stripe", field=exc.field) from None
                if charge.charge_type == ChargeType.ONE_TIME:
                    raise ConnectorError(
                        ErrorClass.MAPPING,
                        f"{sku} is a one-time charge: it is invoiced once, not added to subscription {subscription_id}",
                        system="stripe",
                        field="items",
                    )
                self.ensure_product(sku=sku, name=wanted.get("description") or sku, idempotency_key=idempotency_key)
                if charge.charge_type == ChargeType.USAGE:
                    price = self._metered_price(sku=sku, unit_price=unit_price, currency=currency, interval=charge.interval, idempotency_key=idempotency_key)
                    changes.append({"price": price, "metadata": {"sku": sku}})
                    continue
                price_data = self._price_data(sku=sku, unit_price=unit_price, currency=currency, interval=charge.interval)
                if charge.interval_count != 1:
                    price_data["recurring"]["interval_count"] = charge.interval_count
                changes.append({"price_data": price_data, "quantity": quantity, "metadata": {"sku": sku}})
                continue
            if quantity == 0:
                changes.append({"id": item["id"], "deleted": True})
                continue
            change: dict[str, Any] = {}
            if quantity != int(item.get("quantity") or 0):
                change["quantity"] = quantity
            if unit_price not in (None, "") and mapper.to_major(mapper.to_minor_decimal(unit_price, currency), currency) != mapper.item_unit_price(
                item, currency
            ):
                interval = (item.get("price") or {}).get("recurring", {}).get("interval") or "month"
                change["price_data"] = self._price_data(sku=sku, unit_price=unit_price, currency=currency, interval=interval)
                change["quantity"] = quantity
            if change:
                changes.append({"id": item["id"], **change})
        if not changes:
            return CallResult(external_id=subscription_id, created=False, status_code=200, raw=sub)
        updated = self.call(
            "subscriptions.update",
            self.client.v1.subscriptions.update,
            subscription_id,
            params={"items": changes, "proration_behavior": "create_prorations" if prorate else "none"},
            options={"idempotency_key": self.key(idempotency_key)},
        )
        return CallResult(external_id=updated.id, created=False, status_code=_status(updated), raw=_as_dict(updated))

    def cancel_subscription(self, *, subscription_id: str, idempotency_key: str, at_period_end: bool = False) -> CallResult:
        sub = self._retrieve_subscription(subscription_id)
        if sub.get("status") == "canceled" or (at_period_end and sub.get("cancel_at_period_end")):
            return CallResult(external_id=subscription_id, created=False, status_code=200, raw=sub)
        key = self.key(idempotency_key)
        details = {"comment": key[:500]}  # survives on the subscription: marks the later .deleted event as our echo
        if at_period_end:
            result = self.call(
                "subscriptions.update",
                self.client.v1.subscriptions.update,
                subscription_id,
                params={"cancel_at_period_end": True, "cancellation_details": details},
                options={"idempotency_key": key},
            )
        else:
            result = self.call(
                "subscriptions.cancel",
                self.client.v1.subscriptions.cancel,
                subscription_id,
                params={"cancellation_details": details},
                options={"idempotency_key": key},
            )
        return CallResult(external_id=result.id, created=False, status_code=_status(result), raw=_as_dict(result))

    # --- usage -------------------------------------------------------------------------------
    def report_usage(self, *, customer_id: str, metric: str, quantity: str, timestamp: datetime, idempotency_key: str) -> CallResult:
        identifier = self.key(idempotency_key)
        if len(identifier) > 100:
            identifier = f"{ECHO_PREFIX}{hashlib.sha256(identifier.encode()).hexdigest()[:64]}"
        params = {
            "event_name": metric,
            "identifier": identifier,
            "timestamp": mapper.to_ts(timestamp),
            "payload": {"stripe_customer_id": customer_id, "value": mapper.quantity_str(quantity)},
        }
        event = self.call("billing.meter_events.create", self.client.v1.billing.meter_events.create, params=params, options={"idempotency_key": identifier})
        raw = _as_dict(event)
        return CallResult(external_id=raw.get("identifier") or identifier, created=True, status_code=_status(event), raw=raw)

    # --- invoices -------------------------------------------------------------------------------
    def list_invoices(self, *, customer_id: str | None = None, limit: int = 100) -> Iterator[dict]:
        params: dict[str, Any] = {"limit": min(100, max(1, limit))}
        if customer_id:
            params["customer"] = customer_id
        page = self.call("invoices.list", self.client.v1.invoices.list, params=params)
        yielded = 0
        while True:
            for invoice in page.data:
                yield mapper.invoice_to_canonical(_as_dict(invoice))
                yielded += 1
                if yielded >= limit:
                    return
            if not page.has_more or not page.data:
                return
            page = self.call("invoices.list", self.client.v1.invoices.list, params={**params, "starting_after": page.data[-1].id})

    def get_invoice(self, invoice_id: str) -> dict:
        return _as_dict(self.call("invoices.retrieve", self.client.v1.invoices.retrieve, invoice_id))

    # --- inbound --------------------------------------------------------------------------------
    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[dict]:
        return webhook.raw_events(body, headers, secret=self.webhook_secret)

    def normalize(self, raw: dict) -> list[dict]:
        event = raw.get("payload") or raw
        try:
            return mapper.normalize_event(event, fetch_invoice=self._invoice_or_none)
        except MappingError as exc:
            raise self._mapping(exc) from exc

    def _invoice_or_none(self, invoice_id: str) -> dict | None:
        try:
            return self.get_invoice(invoice_id)
        except ConnectorError as exc:
            if exc.error_class == ErrorClass.NOT_FOUND:
                return None
            raise

    def fetch_changes(self, *, object_type: str, since: datetime | None, limit: int = 2000) -> Iterator[dict]:
        """Poll /v1/events (oldest first) as a safety net for missed webhooks. object_type is an
        event-type prefix such as "invoice" or "customer.subscription" ("" for all)."""
        params: dict[str, Any] = {"limit": 100}
        if object_type:
            params["type"] = f"{object_type}.*"
        if since is not None:
            params["created"] = {"gt": mapper.to_ts(since)}
        collected: list[dict] = []
        page = self.call("events.list", self.client.v1.events.list, params=params)
        while True:
            collected.extend(_as_dict(e) for e in page.data)
            if not page.has_more or not page.data or len(collected) >= limit:
                break
            page = self.call("events.list", self.client.v1.events.list, params={**params, "starting_after": page.data[-1].id})
        collected = collected[:limit][::-1]  # Stripe lists newest first
        for event in sorted(collected, key=lambda e: e.get("created") or 0):
            yield {"id": event["id"], "type": event["type"], "occurred_at": mapper.ts_to_iso(event.get("created")), "payload": event}
