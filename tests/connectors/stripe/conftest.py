"""The Stripe sandbox as a real server (on the test database) and clients pointed at it."""

from __future__ import annotations

import pytest
import stripe

API_VERSION = "2025-03-31.basil"


@pytest.fixture
def stripe_sandbox(sandbox_servers, point_connector):
    server = sandbox_servers("stripe")
    server.faults()  # healthy
    point_connector("stripe", server)
    yield server
    server.faults()


@pytest.fixture
def connector(stripe_sandbox):
    from sync.connectors.stripe.client import StripeConnector

    return StripeConnector.from_settings()


@pytest.fixture
def official(stripe_sandbox, settings):
    """The official stripe-python client, unmodified, pointed at the sandbox."""
    return stripe.StripeClient(
        settings.CONNECTORS["stripe"]["api_key"],
        stripe_version=API_VERSION,
        base_addresses={"api": stripe_sandbox.url},
        max_network_retries=0,
    )


@pytest.fixture
def order():
    def make(number: str = "SO-1001", currency: str = "USD", **extra) -> dict:
        return {
            "order_number": number,
            "currency": currency,
            "closed_won_at": "2025-04-01T10:00:00Z",
            "account": {"external_id": "001-ACME", "name": "Acme GmbH"},
            "lines": extra.pop(
                "lines",
                [
                    {
                        "sku": "PLAT-PRO",
                        "description": "Platform Pro seat",
                        "quantity": "10",
                        "unit_price": "49.00",
                        "billing": "recurring",
                        "interval": "month",
                    },
                    {
                        "sku": "SUPPORT-GOLD",
                        "description": "Gold support",
                        "quantity": "1",
                        "unit_price": "1200.00",
                        "billing": "recurring",
                        "interval": "year",
                    },
                ],
            ),
            **extra,
        }

    return make


@pytest.fixture
def customer_id(connector):
    return connector.upsert_customer(
        customer={"hub_id": "hub-acme", "name": "Acme GmbH", "email": "billing@acme.example"}, idempotency_key="cust-acme"
    ).external_id
