"""Pure units: Stripe webhook signatures, signed like Stripe (mapper) and verified by stripe-python (webhook)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.connectors.errors import ConnectorError
from sync.connectors.stripe import mapper, webhook

# Stripe signs UTF-8 JSON, and stripe-python verifies the body as text: any UTF-8 body
BODIES = st.text(max_size=2000).map(str.encode)


@given(body=BODIES, secret=st.text(min_size=1, max_size=40))
def test_a_signature_verifies_only_its_own_body_and_secret(body, secret):
    now = int(time.time())
    header = mapper.signature_header(body, f"whsec_{secret}", now)
    assert webhook.check_signature(body, header, f"whsec_{secret}") == now
    with pytest.raises(ConnectorError) as tampered:
        webhook.check_signature(body + b"x", header, f"whsec_{secret}")
    with pytest.raises(ConnectorError) as wrong_secret:
        webhook.check_signature(body, header, f"whsec_{secret}x")
    assert tampered.value.error_class == wrong_secret.value.error_class == "auth"


def test_the_signature_matches_stripe_pythons_own_computation():
    import stripe

    body = b'{"id": "evt_1"}'
    expected = stripe.WebhookSignature._compute_signature(f"1743500000.{body.decode()}", "whsec_abc")
    assert mapper.compute_signature(1743500000, body, "whsec_abc") == expected
    stripe.WebhookSignature.verify_header(body.decode(), mapper.signature_header(body, "whsec_abc"), "whsec_abc", 300)


def test_the_tolerance_is_stripe_pythons_and_a_replay_after_it_is_refused():
    body = b'{"id": "evt_1", "object": "event", "type": "invoice.paid"}'
    assert webhook.TOLERANCE == 300
    fresh = int(time.time()) - webhook.TOLERANCE + 30
    assert webhook.check_signature(body, mapper.signature_header(body, "whsec_abc", fresh), "whsec_abc") == fresh
    with pytest.raises(ConnectorError) as caught:
        webhook.check_signature(body, mapper.signature_header(body, "whsec_abc", int(time.time()) - webhook.TOLERANCE - 1), "whsec_abc")
    assert caught.value.error_class == "auth" and "tolerance" in caught.value.message


def test_a_body_that_is_not_utf8_cannot_be_a_stripe_event_and_is_refused_as_auth():
    body = b'{"id": "evt_\xff"}'
    with pytest.raises(ConnectorError) as caught:
        webhook.check_signature(body, mapper.signature_header(body, "whsec_abc"), "whsec_abc")
    assert caught.value.error_class == "auth" and caught.value.status_code == 400


def test_the_raw_payload_is_the_json_stripe_signed_not_stripe_objects():
    """construct_event would turn *_decimal strings into Decimals; the inbox keeps what was sent."""
    body = (
        b'{"id": "evt_2", "object": "event", "type": "customer.subscription.updated", "created": 1743500000, '
        b'"data": {"object": {"object": "subscription", "items": {"object": "list", "data": [{"object": "subscription_item", '
        b'"price": {"object": "price", "unit_amount_decimal": "2000"}}]}}, "previous_attributes": {"items": null}}}'
    )
    [raw] = webhook.raw_events(body, {"Stripe-Signature": mapper.signature_header(body, "whsec_abc")}, secret="whsec_abc")
    price = raw["payload"]["data"]["object"]["items"]["data"][0]["price"]
    assert price["unit_amount_decimal"] == "2000" and raw["payload"]["data"]["previous_attributes"] == {"items": None}
    assert (raw["id"], raw["type"], raw["occurred_at"]) == ("evt_2", "customer.subscription.updated", "2025-04-01T09:33:20Z")
