"""Which connector module plays each role. Add a system here and in settings.CONNECTORS."""

from __future__ import annotations

from functools import cache
from importlib import import_module

from django.conf import settings

from .roles import BillingConnector, Connector, CRMConnector, ERPConnector

CONNECTOR_CLASSES = {
    "salesforce": "sync.connectors.salesforce.client:SalesforceConnector",
    "stripe": "sync.connectors.stripe.client:StripeConnector",
    "netsuite": "sync.connectors.netsuite.client:NetSuiteConnector",
    # a second ERP: registered, used only where CONNECTOR_ROLES names it (the default ERP stays NetSuite)
    "business_central": "sync.connectors.business_central.client:BusinessCentralConnector",
}


def connector_class(system: str) -> type[Connector]:
    module, _, name = CONNECTOR_CLASSES[system].partition(":")
    return getattr(import_module(module), name)


@cache
def _cached(system: str, _settings_key: str) -> Connector:
    return connector_class(system).from_settings()


def get_connector(system: str) -> Connector:
    # keyed by the configured URLs so tests that point a connector elsewhere get a fresh one
    return _cached(system, repr(settings.CONNECTORS.get(system)))


def system_of(role: str) -> str:
    """The system playing a role ('crm', 'billing', 'erp'), without building its client."""
    return settings.CONNECTOR_ROLES[role]


def crm() -> CRMConnector:
    return get_connector(settings.CONNECTOR_ROLES["crm"])  # type: ignore[return-value]


def billing() -> BillingConnector:
    return get_connector(settings.CONNECTOR_ROLES["billing"])  # type: ignore[return-value]


def erp() -> ERPConnector:
    return get_connector(settings.CONNECTOR_ROLES["erp"])  # type: ignore[return-value]
