"""OAuth against the sandbox: client credentials, JWT bearer, and one re-login on an expired session."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sync.connectors.errors import ConnectorError
from sync.connectors.salesforce.client import SalesforceConnector

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rsa_key(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "server.key"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public, key


@pytest.fixture
def jwt_app(sf_server, rsa_key):
    private, public, key = rsa_key
    response = requests.post(
        f"{sf_server.url}/__sandbox__/salesforce/connected-app", json={"consumer_key": "jwt-consumer-key", "certificate_pem": public}, timeout=10
    )
    response.raise_for_status()
    return private, key


def test_client_credentials_token_in_the_form_body(sf_server, settings):
    config = settings.CONNECTORS["salesforce"]
    response = requests.post(
        f"{sf_server.url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": config["client_id"], "client_secret": config["client_secret"]},
        timeout=10,
    )

    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer" and body["instance_url"] == sf_server.url
    assert body["id"].startswith(f"{sf_server.url}/id/00D") and body["signature"] and body["issued_at"].isdigit()


def test_client_credentials_with_a_wrong_secret_is_refused(sf_server, settings):
    response = requests.post(
        f"{sf_server.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(settings.CONNECTORS["salesforce"]["client_id"], "wrong"),
        timeout=10,
    )

    assert response.status_code == 400 and response.json()["error"] == "invalid_client"


def test_connector_reports_a_failed_login_as_an_auth_error(connector):
    connector.client_secret = "wrong"

    with pytest.raises(ConnectorError) as caught:
        connector.health()

    assert caught.value.error_class == "auth" and "invalid client credentials" in caught.value.message


def test_jwt_bearer_login_lets_the_connector_work(sf_server, settings, jwt_app):
    private, _key = jwt_app
    connector = SalesforceConnector(
        token_url=f"{sf_server.url}/services/oauth2/token",
        instance_url=sf_server.url,
        client_id="jwt-consumer-key",
        username=settings.CONNECTORS["salesforce"]["username"],
        private_key_file=str(private),
        webhook_secret="s",
    )

    health = connector.health()

    assert health["instance_url"] == sf_server.url and health["daily_api_requests"]["Max"] > 0


def test_jwt_signed_with_another_key_or_expired_is_refused(sf_server, settings, jwt_app):
    _private, key = jwt_app
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": "jwt-consumer-key", "sub": settings.CONNECTORS["salesforce"]["username"], "aud": "https://login.salesforce.com"}
    token_url = f"{sf_server.url}/services/oauth2/token"
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    forged = requests.post(
        token_url, data={"grant_type": grant, "assertion": jwt.encode({**claims, "exp": int(time.time()) + 120}, other, algorithm="RS256")}, timeout=10
    )
    expired = requests.post(
        token_url, data={"grant_type": grant, "assertion": jwt.encode({**claims, "exp": int(time.time()) - 600}, key, algorithm="RS256")}, timeout=10
    )
    stranger = requests.post(
        token_url,
        data={"grant_type": grant, "assertion": jwt.encode({**claims, "sub": "nobody@q2c.example", "exp": int(time.time()) + 120}, key, algorithm="RS256")},
        timeout=10,
    )
    good = requests.post(
        token_url, data={"grant_type": grant, "assertion": jwt.encode({**claims, "exp": int(time.time()) + 120}, key, algorithm="RS256")}, timeout=10
    )

    assert (forged.status_code, forged.json()["error"]) == (400, "invalid_grant")
    assert (expired.status_code, expired.json()["error_description"]) == (400, "expired authorization code")
    assert (stranger.status_code, stranger.json()["error"]) == (400, "invalid_grant")
    assert good.status_code == 200 and good.json()["access_token"]


def test_a_request_with_an_invalid_token_gets_401_invalid_session_id(sf_server):
    response = requests.get(
        f"{sf_server.url}/services/data/v60.0/query", params={"q": "SELECT Id FROM Account"}, headers={"Authorization": "Bearer nope"}, timeout=10
    )

    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}]


def test_an_expired_session_is_renewed_once_and_the_call_succeeds(connector):
    from sandboxes.salesforce.simulate import expire_tokens

    connector.health()
    assert connector.logins == 1
    assert expire_tokens() == 1

    rows = list(connector.query("SELECT Id FROM Account"))

    assert rows == [] and connector.logins == 2
