"""What every connector is: the Connector base and the three role interfaces flows talk to.

A connector is a client (auth, paging, rate limits, timeouts, error classification)
plus a mapper (system payload ↔ canonical data). Flows talk only to the role
interfaces below, so a new ERP or billing platform is one new module registered in
`sync.connectors.registry` — flows and screens do not change. The plumbing every client
shares lives beside this module: `errors` (ConnectorError and the one classifier) and
`http` (the one send: timeouts, bounded Retry-After waits, call records).

Canonical data crosses this boundary as plain dicts shaped like the `data` of the
canonical events (see `sync/canonical/schemas/`). Money is a decimal *string* with an
ISO 4217 currency; times are ISO 8601 strings or aware datetimes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sync.models import ErrorClass

from .errors import ConnectorError


@dataclass
class CallResult:
    """What a write returned: the target's id for the record, whether it was created."""

    external_id: str
    created: bool | None = None
    status_code: int | None = None
    raw: dict = field(default_factory=dict)
    starts_at: datetime | None = None  # a subscription: when billing starts (issues its first invoice)


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
    def from_settings(cls) -> Connector:
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
        """One subscription for an order (order = order.closed_won.v2 data, lines with their charge
        types): recurring and usage lines become subscription items, one-time lines one-time items
        of its first invoice; metadata carries order_number. The result's `starts_at` says when
        billing starts (its first invoice)."""

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
        """order = order.closed_won.v2 data (+ erp_subsidiary_id); lines reference items by SKU
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
