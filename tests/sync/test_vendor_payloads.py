"""Real vendor payloads the hub has never seen: every object in Stripe's own fixture file,
wrapped in Stripe's event envelope, signed and posted to the webhook, then processed. Plus the
shapes we do map, with each field removed or set to null in turn.

The promise under test: a signed event is always answered 2xx (Stripe would otherwise retry
for three days), is stored, and ends processed, ignored, or dead-lettered with a readable
exception — never a crash that leaves it half-handled."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sync.connectors.stripe import mapper
from sync.engine.inbox import inbox_process
from sync.models import InboxEvent, SyncException

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "fixtures3.json"
SECRET = "whsec_sandbox_secret"
MAPPED = {  # the event types the hub maps, and the object each carries
    "invoice.finalized": "invoice",
    "invoice.paid": "invoice",
    "invoice.payment_failed": "invoice",
    "customer.subscription.updated": "subscription",
    "customer.subscription.deleted": "subscription",
    "credit_note.created": "credit_note",
}
EVENT_OF = {obj: kind for kind, obj in reversed(list(MAPPED.items()))}  # an object's first mapped event type
DONE = {InboxEvent.Status.PROCESSED, InboxEvent.Status.IGNORED, InboxEvent.Status.DEAD}


@pytest.fixture(scope="module")
def resources() -> dict:
    return json.loads(FIXTURES.read_text())["resources"]


@pytest.fixture
def stripe_webhook(client, settings, db, sandbox_servers, point_connector):
    """Posts signed events; the connector talks to the Stripe sandbox (a credit note's
    invoice is fetched from Stripe: unknown ids there answer 404 like Stripe does)."""
    assert settings.CONNECTORS["stripe"]["webhook_secret"] == SECRET  # the sandbox default
    point_connector("stripe", sandbox_servers("stripe"))

    def post(event: dict):
        body = json.dumps(event).encode()
        return client.post("/api/v1/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=mapper.signature_header(body, SECRET))

    return post


def envelope(resources: dict, kind: str, obj: dict, n: int, previous: dict | None = None) -> dict:
    event = copy.deepcopy(resources["event"])
    event.update({"id": f"evt_fixture_{n}", "type": kind, "api_version": "2025-03-31.basil", "request": {"id": None, "idempotency_key": None}})
    event["data"] = {"object": obj, **({"previous_attributes": previous} if previous is not None else {})}
    return event


def process_all() -> dict[str, int]:
    outcomes: dict[str, int] = {}
    for pk in InboxEvent.objects.filter(source="stripe").order_by("pk").values_list("pk", flat=True):
        status = inbox_process(pk)  # an exception escaping here fails the test
        outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes


def test_every_stripe_object_type_is_accepted_and_settles(resources, stripe_webhook):
    """176 object types as `<object>.updated` events: none maps to a flow except the few the
    hub knows, and every one is stored and ends in a final state."""
    n = 0
    for name, obj in resources.items():
        if not isinstance(obj, dict) or name == "event":
            continue
        n += 1
        kind = EVENT_OF.get(name, f"{name}.updated")
        response = stripe_webhook(envelope(resources, kind, obj, n))
        assert response.status_code == 200, (name, response.content)
    assert InboxEvent.objects.filter(source="stripe").count() == n > 150
    process_all()
    assert set(InboxEvent.objects.filter(source="stripe").values_list("status", flat=True)) <= DONE


@pytest.mark.parametrize("kind", list(MAPPED))
def test_a_mapped_event_with_any_field_missing_or_null_is_processed_or_dead_lettered(resources, stripe_webhook, kind):
    base = resources[MAPPED[kind]]
    variants = []
    for key in base:
        if key in ("id", "object"):
            continue
        missing = {k: v for k, v in base.items() if k != key}
        variants += [missing, {**base, key: None}]
    previous = {"items": {"data": []}} if kind == "customer.subscription.updated" else None
    for i, obj in enumerate(variants):
        assert stripe_webhook(envelope(resources, kind, obj, 1000 + i, previous)).status_code == 200
    outcomes = process_all()
    assert sum(outcomes.values()) == len(variants)
    assert set(outcomes) <= DONE, outcomes
    dead = InboxEvent.objects.filter(source="stripe", status=InboxEvent.Status.DEAD)
    for event in dead:  # each dead letter is a readable exception on the queue, payload kept for replay
        exc = SyncException.objects.get(inbox_event=event)
        assert exc.message and "Traceback" not in exc.message and exc.payload


def test_a_signed_body_that_is_not_json_is_refused_readably(client, stripe_webhook, settings):
    body = b"not json at all"
    response = client.post("/api/v1/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=mapper.signature_header(body, SECRET))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json") and response.json()["detail"]


@pytest.mark.parametrize(
    "kind, field", [("invoice.finalized", "currency"), ("invoice.finalized", "total"), ("invoice.paid", "amount_paid"), ("credit_note.created", "currency")]
)
def test_a_document_without_its_currency_or_amount_is_dead_lettered_not_guessed(resources, stripe_webhook, kind, field):
    """A missing currency is not USD and a missing total is not zero: the event waits, named,
    on the exception queue (payload kept) instead of posting a wrong figure to the ledger."""
    obj = {k: v for k, v in resources[MAPPED[kind]].items() if k != field}
    assert stripe_webhook(envelope(resources, kind, obj, 1)).status_code == 200
    assert process_all() == {InboxEvent.Status.DEAD: 1}
    exc = SyncException.objects.get()
    assert exc.error_class == "mapping" and f"{MAPPED[kind]}.{field}" in exc.message
    assert exc.payload["payload"]["data"]["object"]["id"] == obj["id"]
