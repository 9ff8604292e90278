"""The Salesforce relay's signature carries a timestamp and expires after 300 s (issue 13 A.4)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from sandboxes.salesforce.simulate import sign
from sync.connectors.errors import ConnectorError
from sync.connectors.salesforce import webhook

SECRET = "relay-secret"
BODY = json.dumps({"events": []}).encode()


def header(value: str) -> dict:
    return {"X-Q2C-Signature": value}


def test_a_fresh_signature_passes_and_returns_its_timestamp():
    now = int(time.time())
    assert webhook.check_signature(BODY, header(webhook.signature(BODY, SECRET, now)), secret=SECRET) == now
    assert webhook.check_signature(BODY, header(sign(BODY, SECRET)), secret=SECRET)  # the sandbox relay signs the same way


@pytest.mark.parametrize("age", [webhook.TOLERANCE + 1, -(webhook.TOLERANCE + 1), 86_400])
def test_a_signature_outside_the_tolerance_is_refused_even_when_the_hmac_is_right(age):
    stale = webhook.signature(BODY, SECRET, int(time.time()) - age)
    with pytest.raises(ConnectorError, match="tolerance") as refused:
        webhook.check_signature(BODY, header(stale), secret=SECRET)
    assert refused.value.error_class == "auth"


def test_the_timestamp_is_signed_so_it_cannot_be_refreshed_by_hand():
    old = int(time.time()) - 3_600
    captured = webhook.signature(BODY, SECRET, old)
    refreshed = captured.replace(f"t={old}", f"t={int(time.time())}")
    with pytest.raises(ConnectorError, match="invalid"):
        webhook.check_signature(BODY, header(refreshed), secret=SECRET)


@pytest.mark.parametrize(
    "value",
    [
        "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),  # the old, untimed form
        "v1=" + "0" * 64,
        "t=abc,v1=" + "0" * 64,
        f"t={int(time.time())}",
        "",
    ],
)
def test_a_malformed_or_untimed_signature_is_refused(value):
    with pytest.raises(ConnectorError):
        webhook.check_signature(BODY, header(value), secret=SECRET)


def test_one_matching_v1_of_several_is_enough_while_a_secret_rotates():
    now = int(time.time())
    good = webhook.signature(BODY, SECRET, now).split("v1=")[1]
    assert webhook.check_signature(BODY, header(f"t={now},v1={'0' * 64},v1={good}"), secret=SECRET) == now


def test_the_webhook_endpoint_refuses_a_replayed_delivery(client, db, settings):
    secret = settings.CONNECTORS["salesforce"]["webhook_secret"]
    stale = sign(BODY, secret, int(time.time()) - webhook.TOLERANCE - 5)
    response = client.post("/api/v1/webhooks/salesforce/", BODY, content_type="application/json", HTTP_X_Q2C_SIGNATURE=stale)
    assert response.status_code == 400 and response["Content-Type"].startswith("application/problem+json")
    assert "tolerance" in response.json()["detail"]
    fresh = client.post("/api/v1/webhooks/salesforce/", BODY, content_type="application/json", HTTP_X_Q2C_SIGNATURE=sign(BODY, secret))
    assert fresh.status_code == 200
