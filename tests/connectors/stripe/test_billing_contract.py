"""Runs the shared BillingConnector contract (tests/connectors/contract_billing.py) for every
billing case listed there — Stripe today."""

from tests.connectors.contract_billing import BillingConnectorContract


class TestBillingConnectorContract(BillingConnectorContract):
    pass
