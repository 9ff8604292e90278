"""What every connector is: errors, results, the three role interfaces, and HTTP plumbing.

A connector is a client (auth, paging, rate limits, timeouts, error classification)
plus a mapper (system payload ↔ canonical data). Flows talk only to the role
interfaces below, so a new ERP or billing platform is one new module registered in
`sync.connectors.registry` — flows and screens do not change.

Canonical data crosses this boundary as plain dicts shaped like the `data` of the
canonical events (see `sync/canonical/schemas/`). Money is a decimal *string* with an
ISO 4217 currency; times are ISO 8601 strings or aware datetimes.
"""

from __future__ import annotations

import email.utils
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from typing import Any, Iterator, Mapping

import requests

from sync.models import ErrorClass, TRANSIENT_ERROR_CLASSES

log = logging.getLogger(__name__)


class ConnectorError(Exception):
    """A call failed, classified into one of the design's error classes.

    `message` is the target system's own words; `field` the field it named, if any.
    """

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        system: str = "",
        field: str = "",
        code: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
        response: Any = None,
    ):
        super().__init__(message)
        self.error_class = ErrorClass(error_class)
        self.message = message
        self.system = system
        self.field = field
        self.code = code
        self.status_code = status_code
        self.retry_after = retry_after
        self.response = response if response is not None else {}

    @property
    def transient(self) -> bool:
        return self.error_class in TRANSIENT_ERROR_CLASSES

    def __repr__(self) -> str:
        return f"ConnectorError({self.error_class.value}, {self.message!r}, field={self.field!r}, status={self.status_code})"


@dataclass
class CallResult:
    """What a write returned: the target's id for the record, whether it was created."""

    external_id: str
    created: bool | None = None
    status_code: int | None = None
    raw: dict = field(default_factory=dict)


def classify_status(status: int, code: str = "") -> ErrorClass:
    """HTTP status (+ vendor error code) → error class. Vendor clients refine this."""
    code = (code or "").upper()
    if status == 429 or code in {"REQUEST_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED", "RATE_LIMIT", "CONCURRENCY_LIMIT_EXCEEDED"}:
        return ErrorClass.RATE_LIMIT
    if status in (401, 403) or code in {"INVALID_SESSION_ID", "INVALID_LOGIN", "INVALID_AUTH_HEADER"}:
        return ErrorClass.AUTH
    if status == 404:
        return ErrorClass.NOT_FOUND
    if status == 409 or code in {"IDEMPOTENCY_ERROR", "ENTITY_IS_LOCKED", "UNABLE_TO_LOCK_ROW"}:
        return ErrorClass.CONFLICT
    if code in {"DUPLICATE_VALUE", "DUPLICATES_DETECTED", "DUPLICATE_EXTERNAL_ID"} or status == 300:
        return ErrorClass.DUPLICATE
    if status in (408, 504):
        return ErrorClass.TIMEOUT
    if status >= 500:
        return ErrorClass.UNAVAILABLE
    return ErrorClass.VALIDATION


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt_timezone.utc)
    return max(0.0, (when - datetime.now(dt_timezone.utc)).total_seconds())


def record_call(system: str, operation: str, status_code: int | None, error_class: str, started: float) -> None:
    """One row per outbound call, for the Connectors page (rate, errors, latency)."""
    from sync.models import ConnectorCall

    try:
        ConnectorCall.objects.create(
            system=system, operation=operation[:96], status_code=status_code, error_class=error_class or "",
            latency_ms=int((time.monotonic() - started) * 1000),
        )
    except Exception:  # noqa: BLE001 — telemetry must never break a sync
        log.warning("could not record connector call", exc_info=True)


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    system: str,
    operation: str,
    timeout: float,
    max_rate_limit_wait: float = 30.0,
    max_attempts: int = 4,
    **kwargs,
) -> requests.Response:
    """Send one request; on 429 wait `Retry-After` (bounded) and try again.

    Returns the final response (any status) — the caller maps a failure body to a
    ConnectorError with `error_from_response`. Network failures raise ConnectorError
    (`timeout` / `unavailable`) directly.
    """
    waited = 0.0
    for attempt in range(1, max_attempts + 1):
        started = time.monotonic()
        try:
            response = session.request(method, url, timeout=timeout, **kwargs)
        except requests.Timeout as exc:
            record_call(system, operation, None, ErrorClass.TIMEOUT, started)
            raise ConnectorError(ErrorClass.TIMEOUT, f"{system} did not answer within {timeout:.0f}s", system=system) from exc
        except requests.ConnectionError as exc:
            record_call(system, operation, None, ErrorClass.UNAVAILABLE, started)
            raise ConnectorError(ErrorClass.UNAVAILABLE, f"cannot reach {system}: {exc.__class__.__name__}", system=system) from exc
        error_class = "" if response.ok else classify_status(response.status_code).value
        record_call(system, operation, response.status_code, error_class, started)
        if response.status_code != 429 or attempt == max_attempts:
            return response
        delay = parse_retry_after(response.headers.get("Retry-After"))
        delay = min(2.0 ** attempt, 10.0) if delay is None else delay
        if waited + delay > max_rate_limit_wait:
            return response  # leave the long wait to the engine's retry schedule
        log.info("rate limited by %s; waiting %.1fs", system, delay, extra={"system": system, "operation": operation})
        time.sleep(delay)
        waited += delay
    return response  # pragma: no cover — loop always returns


# --- the three role interfaces ------------------------------------------------------------
# A *raw event* is what a system sent or what a poll found, before mapping:
#     {"id": str (stable per source: the inbox dedupes on it), "type": str (vendor's own type),
#      "occurred_at": ISO 8601 str, "payload": dict (the vendor's object, untouched)}
# The web tier only verifies and stores raw events (fast, no outbound calls); a worker calls
# `normalize` later, which may call the vendor API to enrich, and returns canonical envelopes
# {id, type, source, occurred_at, correlation_id?, data} valid against sync/canonical/schemas.


class Connector(ABC):
    system: str  # "salesforce", "stripe", "netsuite", …
    role: str  # "crm", "billing", "erp"

    @classmethod
    @abstractmethod
    def from_settings(cls) -> "Connector":
        """Build from settings.CONNECTORS[system] (environment-driven)."""

    def health(self) -> dict:
        """A cheap authenticated call; raises ConnectorError when unhealthy."""
        return {}

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[dict]:
        """Check the signature of an inbound webhook and split it into raw events.
        Raise ConnectorError(auth) for a bad or missing signature, (validation) for a bad body."""
        raise ConnectorError(ErrorClass.VALIDATION, f"{self.system} does not send webhooks", system=self.system)

    def normalize(self, raw: dict) -> list[dict]:
        """Raw event → canonical envelopes (empty list: not relevant, e.g. our own echo)."""
        return []

    def fetch_changes(self, *, object_type: str, since: datetime | None, limit: int = 2000) -> Iterator[dict]:
        """Raw events for records of `object_type` changed after `since`, oldest first (polling)."""
        return iter(())


class CRMConnector(Connector):
    role = "crm"

    @abstractmethod
    def set_status(self, *, object_type: str, external_id: str, fields: dict, idempotency_key: str) -> CallResult:
        """Write integration status back (e.g. Order Status='Activated', Q2C_Status__c, ERP and
        billing ids). Idempotent: the same call twice leaves the same record."""


class BillingConnector(Connector):
    role = "billing"

    @abstractmethod
    def upsert_customer(self, *, customer: dict, idempotency_key: str) -> CallResult:
        """customer = {hub_id, name, email, tax_id, currency, legal_entity, crm_account_id}.
        Finds the customer by hub_id (metadata) before creating: never a duplicate."""

    @abstractmethod
    def create_subscription(self, *, customer_id: str, order: dict, idempotency_key: str) -> CallResult:
        """One subscription for an order's recurring lines (order = order.closed_won.v1 data);
        metadata carries order_number."""

    @abstractmethod
    def get_subscription(self, *, subscription_id: str) -> dict:
        """{id, status, currency, customer_id, items: [{id, sku, quantity, unit_price}], arr} (decimal strings)."""

    @abstractmethod
    def update_subscription(self, *, subscription_id: str, items: list[dict], idempotency_key: str, prorate: bool = True) -> CallResult:
        """Make the items match: items = [{sku, quantity, unit_price}] (quantity "0" removes an item);
        items not listed stay as they are."""

    @abstractmethod
    def cancel_subscription(self, *, subscription_id: str, idempotency_key: str, at_period_end: bool = False) -> CallResult: ...

    @abstractmethod
    def report_usage(self, *, customer_id: str, metric: str, quantity: str, timestamp: datetime, idempotency_key: str) -> CallResult: ...

    @abstractmethod
    def list_invoices(self, *, customer_id: str | None = None, limit: int = 100) -> Iterator[dict]:
        """Canonical invoices: {id, number, status, currency, total, subscription_id, order_number}."""


class ERPConnector(Connector):
    role = "erp"

    @abstractmethod
    def upsert_customer(self, *, customer: dict, external_id: str) -> CallResult: ...

    @abstractmethod
    def upsert_sales_order(self, *, order: dict, customer_id: str, external_id: str) -> CallResult:
        """order = order.closed_won.v1 data (+ erp_subsidiary_id); lines reference items by SKU
        (an unknown SKU raises ConnectorError(mapping) naming it)."""

    @abstractmethod
    def get_sales_order(self, *, external_id: str) -> dict | None:
        """{id, external_id, status, total, currency} or None."""

    @abstractmethod
    def close_sales_order(self, *, sales_order_id: str, external_id: str) -> CallResult: ...

    @abstractmethod
    def record_order_change(self, *, change: dict, sales_order_id: str, customer_id: str, external_id: str) -> CallResult:
        """Financial impact of an amendment/renewal (a change order), idempotent by external_id.
        change = subscription.amended.v1 / subscription.renewed.v1 data."""

    @abstractmethod
    def upsert_invoice(self, *, invoice: dict, customer_id: str, external_id: str) -> CallResult:
        """invoice = invoice.finalized.v1 data (+ erp_subsidiary_id, sales_order_id if known)."""

    @abstractmethod
    def upsert_payment(self, *, payment: dict, customer_id: str, invoice_id: str | None, external_id: str) -> CallResult: ...

    @abstractmethod
    def upsert_credit_memo(self, *, credit_memo: dict, customer_id: str, external_id: str) -> CallResult: ...

    @abstractmethod
    def query(self, *, q: str, limit: int = 1000) -> Iterator[dict]:
        """Paged read (SuiteQL for NetSuite), yielding rows."""
