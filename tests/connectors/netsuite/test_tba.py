"""Token-Based Authentication: the sandbox checks the OAuth 1.0a signature as NetSuite does."""

from __future__ import annotations

import time

import pytest
import requests

from sync.connectors.errors import ConnectorError
from sync.connectors.netsuite.client import NetSuiteConnector
from sync.models import ErrorClass

from .conftest import tba

pytestmark = pytest.mark.django_db(transaction=True)


def assert_invalid_login(response):
    assert response.status_code == 401
    body = response.json()
    assert body["title"] == "Unauthorized"
    assert body["status"] == 401
    assert body["type"].endswith("#sec10.4.2")
    assert body["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"
    assert "Invalid login attempt" in body["o:errorDetails"][0]["detail"]


def test_it_accepts_a_request_signed_by_requests_oauthlib(raw):
    response = raw.get(f"{raw.base}/record/v1/subsidiary/1")
    assert response.status_code == 200
    assert response.json()["name"] == "Q2C US Inc."


def test_it_accepts_a_signed_request_with_query_parameters(raw):
    response = raw.post(
        f"{raw.base}/query/v1/suiteql", params={"limit": 2, "offset": 1}, json={"q": "SELECT id FROM subsidiary ORDER BY id"}, headers={"Prefer": "transient"}
    )
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["items"]] == ["2", "3"]


def test_it_refuses_a_wrong_token_secret_with_netsuites_401_body(netsuite_server, settings):
    response = requests.get(f"{netsuite_server.url}/services/rest/record/v1/subsidiary/1", auth=tba(settings, token_secret="not-the-secret"))
    assert_invalid_login(response)


def test_it_refuses_a_request_without_a_signature(netsuite_server):
    assert_invalid_login(requests.get(f"{netsuite_server.url}/services/rest/record/v1/subsidiary/1"))


def test_it_refuses_hmac_sha1(netsuite_server, settings):
    response = requests.get(f"{netsuite_server.url}/services/rest/record/v1/subsidiary/1", auth=tba(settings, signature_method="HMAC-SHA1"))
    assert_invalid_login(response)


def test_it_refuses_another_accounts_realm(netsuite_server, settings):
    response = requests.get(f"{netsuite_server.url}/services/rest/record/v1/subsidiary/1", auth=tba(settings, account_id="7654321"))
    assert_invalid_login(response)


def test_it_refuses_a_stale_timestamp(netsuite_server, settings):
    stale = str(int(time.time()) - 3600)
    response = requests.get(f"{netsuite_server.url}/services/rest/record/v1/subsidiary/1", auth=tba(settings, timestamp=stale))
    assert_invalid_login(response)


def test_it_refuses_a_replayed_request(raw):
    prepared = raw.prepare_request(requests.Request("GET", f"{raw.base}/record/v1/subsidiary/1"))
    assert raw.send(prepared).status_code == 200
    assert_invalid_login(raw.send(prepared))


def test_the_connector_reports_a_bad_token_as_an_auth_error(netsuite_server, settings):
    creds = {**settings.CONNECTORS["netsuite"], "base_url": netsuite_server.url, "token_secret": "revoked"}
    connector = NetSuiteConnector(**creds)
    with pytest.raises(ConnectorError) as caught:
        connector.get_sales_order(external_id="SO-1")
    assert caught.value.error_class == ErrorClass.AUTH
    assert caught.value.code == "INVALID_LOGIN"
    assert caught.value.status_code == 401
    assert not caught.value.transient
