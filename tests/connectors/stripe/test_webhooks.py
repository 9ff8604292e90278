"""Webhooks: Stripe's signature scheme, and the sandbox delivering signed events to a receiver."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from sandboxes.stripe import simulate
from sandboxes.stripe.models import SandboxEvent
from sync.canonical.events import validate_envelope
from sync.connectors.errors import ConnectorError
from sync.connectors.stripe import mapper

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec_sandbox_secret"
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid", "created": 1743500000, "data": {"object": {}}}, indent=2).encode()


def signed(body: bytes = BODY, secret: str = SECRET, t: int | None = None) -> dict:
    return {"Stripe-Signature": mapper.signature_header(body, secret, t)}


def test_a_valid_signature_is_accepted(connector):
    raw = connector.verify_webhook(BODY, signed())
    assert raw == [{"id": "evt_1", "type": "invoice.paid", "occurred_at": "2025-04-01T09:33:20Z", "payload": json.loads(BODY)}]


def test_the_official_librarys_signature_is_accepted(connector):
    import stripe

    header = stripe.WebhookSignature._compute_signature(f"{int(time.time())}.{BODY.decode()}", SECRET)
    raw = connector.verify_webhook(BODY, {"stripe-signature": f"t={int(time.time())},v1={header}"})
    assert raw[0]["id"] == "evt_1"


def test_any_matching_v1_passes_when_several_are_sent(connector):
    t = int(time.time())
    good = mapper.compute_signature(t, BODY, SECRET)
    assert connector.verify_webhook(BODY, {"Stripe-Signature": f"t={t},v1={'0' * 64},v0=abc,v1={good}"})[0]["id"] == "evt_1"


@pytest.mark.parametrize("case", ["tampered body", "wrong secret", "too old", "no header", "no v1"])
def test_a_bad_signature_is_rejected_as_auth(connector, case):
    body, headers = BODY, signed()
    if case == "tampered body":
        body = BODY.replace(b"invoice.paid", b"invoice.void")
    elif case == "wrong secret":
        headers = signed(secret="whsec_other")
    elif case == "too old":
        headers = signed(t=int(time.time()) - 301)
    elif case == "no header":
        headers = {}
    elif case == "no v1":
        headers = {"Stripe-Signature": f"t={int(time.time())}"}
    with pytest.raises(ConnectorError) as caught:
        connector.verify_webhook(body, headers)
    assert caught.value.error_class == "auth"


def test_a_signed_body_that_is_not_an_event_is_a_validation_error(connector):
    body = b'{"hello": "world"}'
    with pytest.raises(ConnectorError) as caught:
        connector.verify_webhook(body, signed(body))
    assert caught.value.error_class == "validation"


class Receiver:
    """A tiny webhook endpoint that verifies each delivery with the connector, as the hub does."""

    def __init__(self, connector, fail_first: int = 0):
        self.connector, self.fail_first = connector, fail_first
        self.accepted: list[dict] = []
        self.rejected = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    receiver.accepted += receiver.connector.verify_webhook(body, dict(self.headers))
                    self.send_response(200)
                except ConnectorError:
                    receiver.rejected += 1
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/webhooks/stripe/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(connector):
    made = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(connector, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_advance_billing_emits_signed_webhooks_that_the_connector_verifies(connector, customer_id, order, receiver):
    endpoint = receiver()
    sub_id = connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="s").external_id
    paid = simulate.advance_billing(pay_failure_rate=0.0)  # pays the first invoice
    cycled = simulate.advance_billing(now=timezone.now() + timedelta(days=31), pay_failure_rate=0.0)  # next period's invoice
    delivered = simulate.deliver_pending_webhooks(max_events=500, url=endpoint.url)

    assert endpoint.rejected == 0
    assert delivered == len(endpoint.accepted) == SandboxEvent.objects.count()
    types = [raw["type"] for raw in endpoint.accepted]
    assert {"customer.subscription.created", "invoice.finalized", "invoice.paid"} <= set(types)
    assert set(paid) | set(cycled) <= {raw["id"] for raw in endpoint.accepted}
    envelopes = [env for raw in endpoint.accepted for env in connector.normalize(raw)]
    assert all(validate_envelope(env) == [] for env in envelopes), [validate_envelope(e) for e in envelopes]
    finalized = [e for e in envelopes if e["type"] == "invoice.finalized.v1"]
    assert len(finalized) == 2 and {e["data"]["order_number"] for e in finalized} == {"SO-1001"}
    assert {e["data"]["billing_reason"] for e in finalized} == {"subscription_create", "subscription_cycle"}
    assert [e["data"]["invoice_number"] for e in envelopes if e["type"] == "payment.received.v1"] == [finalized[0]["data"]["invoice_number"]]
    assert connector.get_subscription(subscription_id=sub_id)["status"] == "active"
    assert simulate.deliver_pending_webhooks(url=endpoint.url) == 0  # nothing delivered twice


def test_a_failed_delivery_is_retried_later(connector, customer_id, receiver):
    endpoint = receiver(fail_first=1)
    first = SandboxEvent.objects.order_by("seq").first()
    assert simulate.deliver_pending_webhooks(max_events=1, url=endpoint.url) == 0
    first.refresh_from_db()
    assert first.delivery == "pending" and first.attempts == 1 and first.last_status == 500
    assert first.next_attempt_at > timezone.now()
    SandboxEvent.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now())
    assert simulate.deliver_pending_webhooks(max_events=1, url=endpoint.url) == 1
    first.refresh_from_db()
    assert first.delivery == "delivered" and first.attempts == 2
    assert endpoint.accepted[0]["id"] == first.id
