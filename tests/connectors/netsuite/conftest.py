"""A NetSuite sandbox server per session, healthy at the start and end of each test."""

from __future__ import annotations

import pytest
import requests
from requests_oauthlib import OAuth1

from sync.connectors.netsuite.client import NetSuiteConnector


@pytest.fixture
def netsuite_server(sandbox_servers):
    server = sandbox_servers("netsuite")
    server.faults()
    yield server
    server.faults()


@pytest.fixture
def netsuite(netsuite_server, point_connector) -> NetSuiteConnector:
    """The connector, built from settings, pointed at the sandbox."""
    point_connector("netsuite", netsuite_server)
    return NetSuiteConnector.from_settings()


def tba(settings, **overrides) -> OAuth1:
    creds = {**settings.CONNECTORS["netsuite"], **overrides}
    return OAuth1(
        creds["consumer_key"],
        client_secret=creds["consumer_secret"],
        resource_owner_key=creds["token_id"],
        resource_owner_secret=creds["token_secret"],
        signature_method=overrides.pop("signature_method", "HMAC-SHA256"),
        realm=creds["account_id"],
        **{k: v for k, v in overrides.items() if k in ("timestamp", "nonce")},
    )


@pytest.fixture
def raw(netsuite_server, settings):
    """A plain requests session signed by requests-oauthlib: the REST API as any client sees it."""
    session = requests.Session()
    session.auth = tba(settings)
    session.base = f"{netsuite_server.url}/services/rest"
    return session
