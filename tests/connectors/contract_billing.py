"""The BillingConnector contract, run against every billing connector's sandbox.

A new billing platform (Chargebee, Zuora…) is tested by appending a BillingCase to
BILLING_CASES: every test in BillingConnectorContract then runs against it too.
A module collects the suite with:

    from tests.connectors.contract_billing import BillingConnectorContract

    class TestBillingConnectorContract(BillingConnectorContract):
        pass
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sync.canonical.events import validate_envelope
from sync.connectors.errors import ConnectorError
from sync.connectors.roles import BillingConnector


@dataclass(frozen=True)
class BillingCase:
    system: str  # key in settings.CONNECTORS and the registry
    sandbox: str  # sandbox_servers(<name>)
    count_subscriptions: Callable[[str], int]  # order_number → subscriptions the sandbox holds for it
    currency: str = "USD"

    def __str__(self) -> str:
        return self.system


def _stripe_subscriptions(order_number: str) -> int:
    from sandboxes.stripe.simulate import count_objects

    return count_objects("subscription", order_number=order_number)


BILLING_CASES = [
    BillingCase(system="stripe", sandbox="stripe", count_subscriptions=_stripe_subscriptions),
]


def _order(number: str, currency: str) -> dict:
    return {
        "order_number": number,
        "currency": currency,
        "closed_won_at": "2025-04-01T10:00:00Z",
        "account": {"external_id": "001-CONTRACT", "name": "Contract Co"},
        "lines": [
            {"sku": "CT-SEAT", "description": "Seat", "quantity": "5", "unit_price": "20.00", "billing": "recurring", "interval": "month"},
            {"sku": "CT-PLATFORM", "description": "Platform fee", "quantity": "1", "unit_price": "1200.00", "billing": "recurring", "interval": "year"},
        ],
    }


@pytest.mark.django_db(transaction=True)
class BillingConnectorContract:
    """What flows rely on from any BillingConnector, checked against its sandbox."""

    @pytest.fixture(params=BILLING_CASES, ids=str)
    def case(self, request) -> BillingCase:
        return request.param

    @pytest.fixture
    def billing(self, case, sandbox_servers, point_connector) -> BillingConnector:
        from sync.connectors.registry import connector_class

        server = sandbox_servers(case.sandbox)
        server.faults()
        point_connector(case.system, server)
        self.server = server
        connector = connector_class(case.system).from_settings()
        assert isinstance(connector, BillingConnector) and connector.role == "billing"
        yield connector
        server.faults()

    @pytest.fixture
    def customer_id(self, billing, case) -> str:
        return billing.upsert_customer(
            customer={"hub_id": "hub-contract", "name": "Contract Co", "email": "ap@contract.example", "currency": case.currency},
            idempotency_key="contract-customer",
        ).external_id

    def test_upsert_customer_is_idempotent_by_hub_id(self, billing, customer_id, case):
        again = billing.upsert_customer(
            customer={"hub_id": "hub-contract", "name": "Contract Co", "email": "ap@contract.example", "currency": case.currency},
            idempotency_key="contract-customer-2",
        )
        assert again.external_id == customer_id and again.created is False

    def test_create_subscription_twice_makes_one(self, billing, customer_id, case):
        first = billing.create_subscription(customer_id=customer_id, order=_order("CT-1", case.currency), idempotency_key="contract-sub")
        again = billing.create_subscription(customer_id=customer_id, order=_order("CT-1", case.currency), idempotency_key="contract-sub")
        assert first.external_id == again.external_id
        assert case.count_subscriptions("CT-1") == 1

    def test_get_subscription_speaks_canonical_money(self, billing, customer_id, case):
        sub_id = billing.create_subscription(customer_id=customer_id, order=_order("CT-2", case.currency), idempotency_key="s").external_id
        sub = billing.get_subscription(subscription_id=sub_id)
        assert sub["id"] == sub_id and sub["currency"] == case.currency and sub["customer_id"] == customer_id
        assert {(i["sku"], Decimal(i["quantity"]), Decimal(i["unit_price"])) for i in sub["items"]} == {
            ("CT-SEAT", Decimal(5), Decimal(20)),
            ("CT-PLATFORM", Decimal(1), Decimal(1200)),
        }
        assert Decimal(sub["arr"]) == Decimal(2400)  # 5 × 20 × 12 + 1200

    def test_update_subscription_changes_adds_and_removes_by_sku(self, billing, customer_id, case):
        sub_id = billing.create_subscription(customer_id=customer_id, order=_order("CT-3", case.currency), idempotency_key="s").external_id
        billing.update_subscription(
            subscription_id=sub_id,
            idempotency_key="u",
            items=[
                {"sku": "CT-SEAT", "quantity": "8", "unit_price": "20.00"},
                {"sku": "CT-PLATFORM", "quantity": "0", "unit_price": "1200.00"},
                {"sku": "CT-ADDON", "quantity": "2", "unit_price": "5.00", "billing": "recurring", "interval": "month"},
            ],
        )
        items = {i["sku"]: Decimal(i["quantity"]) for i in billing.get_subscription(subscription_id=sub_id)["items"]}
        assert items == {"CT-SEAT": 8, "CT-ADDON": 2}

    def test_cancel_subscription_twice_is_harmless(self, billing, customer_id, case):
        sub_id = billing.create_subscription(customer_id=customer_id, order=_order("CT-4", case.currency), idempotency_key="s").external_id
        billing.cancel_subscription(subscription_id=sub_id, idempotency_key="c")
        billing.cancel_subscription(subscription_id=sub_id, idempotency_key="c")
        assert billing.get_subscription(subscription_id=sub_id)["status"] in ("canceled", "cancelled")

    def test_list_invoices_carries_the_order_number(self, billing, customer_id, case):
        sub_id = billing.create_subscription(customer_id=customer_id, order=_order("CT-5", case.currency), idempotency_key="s").external_id
        invoices = [i for i in billing.list_invoices(customer_id=customer_id) if i["subscription_id"] == sub_id]
        assert invoices and invoices[0]["order_number"] == "CT-5" and invoices[0]["currency"] == case.currency
        assert Decimal(invoices[0]["total"]) == Decimal(1300)  # first period: 5 × 20 + 1200

    def test_report_usage_is_idempotent(self, billing, customer_id):
        when = datetime.now(UTC)
        first = billing.report_usage(customer_id=customer_id, metric="api_calls", quantity="10", timestamp=when, idempotency_key="usage-1")
        again = billing.report_usage(customer_id=customer_id, metric="api_calls", quantity="10", timestamp=when, idempotency_key="usage-1")
        assert first.external_id == again.external_id

    def test_an_outage_is_a_transient_error(self, billing):
        self.server.faults(outage=True)
        with pytest.raises(ConnectorError) as caught:
            billing.upsert_customer(customer={"hub_id": "hub-down", "name": "Down Inc"}, idempotency_key="down")
        assert caught.value.transient

    def test_irrelevant_raw_events_normalize_to_nothing_and_the_rest_validate(self, billing):
        assert (
            billing.normalize(
                {"id": "x-1", "type": "something.unrelated", "occurred_at": "2025-04-01T00:00:00Z", "payload": {"id": "x-1", "type": "something.unrelated"}}
            )
            == []
        )
        for raw in billing.fetch_changes(object_type="", since=None, limit=200):
            for envelope in billing.normalize(raw):
                assert validate_envelope(envelope) == []
