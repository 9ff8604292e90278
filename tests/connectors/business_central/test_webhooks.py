"""Business Central webhooks end to end: the validationToken handshake on subscribe and renew, the
3-day expiry, notifications without payload, and the connector reading the record again."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from sandboxes.business_central.models import Notification, Subscription
from sync.canonical.events import validate_envelope
from sync.connectors.errors import ConnectorError
from sync.models import ConnectorCall, ErrorClass

pytestmark = pytest.mark.django_db(transaction=True)
COMPANY = "5b2a1c9e-7d3f-4e8a-9c61-0b4d2f7a8e13"
NOTIFICATION_KEYS = {"subscriptionId", "clientState", "expirationDateTime", "resource", "changeType", "lastModifiedDateTime"}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def post_an_invoice(bc) -> str:
    customer = bc.upsert_customer(customer={"name": "Hooli", "currency": "USD"}, external_id=f"CUS-{uuid.uuid4().hex[:8].upper()}").external_id
    invoice = {
        "invoice_number": f"INV-{uuid.uuid4().hex[:6]}",
        "currency": "USD",
        "finalized_at": "2026-03-03T00:00:00Z",
        "lines": [{"sku": "PLAT-SEAT", "quantity": "10", "unit_amount": "45.00", "amount": "450.00"}],
    }
    return bc.upsert_invoice(invoice=invoice, customer_id=customer, external_id=f"INV-{uuid.uuid4().hex[:8].upper()}").external_id


def test_subscribing_answers_the_handshake_and_lasts_three_days(bc, receiver, settings):
    sub = bc.subscribe(notification_url=receiver.url, entity_set="salesInvoices")

    assert len(receiver.handshakes) == 1
    assert sub["resource"] == f"/api/v2.0/companies({COMPANY})/salesInvoices"
    assert sub["notificationUrl"] == receiver.url and sub["clientState"] == settings.CONNECTORS["business_central"]["webhook_client_state"]
    lifetime = when(sub["expirationDateTime"]) - datetime.now(UTC)
    assert timedelta(days=3) - timedelta(minutes=1) < lifetime <= timedelta(days=3)
    assert [s["subscriptionId"] for s in bc.subscriptions()] == [sub["subscriptionId"]]


def test_a_receiver_that_does_not_echo_the_token_gets_no_subscription(bc, receiver):
    receiver.echo = False

    with pytest.raises(ConnectorError) as caught:
        bc.subscribe(notification_url=receiver.url, entity_set="salesInvoices")

    assert caught.value.error_class == ErrorClass.VALIDATION and "validation token" in caught.value.message
    assert len(receiver.handshakes) == 1 and not Subscription.objects.exists()


def test_renewing_handshakes_again_and_moves_the_expiry_on(bc, bc_server, receiver, raw):
    bc_server.settings(subscription_lifetime_seconds=60)
    sub = bc.subscribe(notification_url=receiver.url, entity_set="customers")
    bc_server.settings(subscription_lifetime_seconds=3 * 24 * 3600)

    refused = raw("PATCH", f"{raw.root}/subscriptions('{sub['subscriptionId']}')", json={"clientState": sub["clientState"]})
    renewed = bc.renew_subscription(sub["subscriptionId"])

    assert refused.status_code == 400 and refused.json()["error"]["code"] == "BadRequest_InvalidToken"
    assert len(receiver.handshakes) == 2
    assert when(renewed["expirationDateTime"]) - when(sub["expirationDateTime"]) > timedelta(days=2)
    assert renewed["@odata.etag"] != sub["@odata.etag"]


def test_a_posted_invoice_is_notified_without_payload_and_the_connector_reads_it(bc, bc_server, receiver):
    bc_server.settings(notification_delay_seconds=0)
    bc.subscribe(notification_url=receiver.url, entity_set="salesInvoices")
    invoice_id = post_an_invoice(bc)

    summary = bc_server.deliver()

    assert summary["sent"] == 1 and summary["notifications"] == 1
    [item] = receiver.notifications()
    assert set(item) == NOTIFICATION_KEYS  # no record in it
    assert item["resource"] == f"api/v2.0/companies({COMPANY})/salesInvoices({invoice_id})"
    assert item["changeType"] == "created"  # created, lines added, posted within the delay: one notification
    raw_events = bc.verify_webhook(receiver.bodies[0], {})
    assert [r["type"] for r in raw_events] == ["salesInvoices.created"]
    reads_before = ConnectorCall.objects.filter(system="business_central", operation="get salesInvoices").count()

    [envelope] = bc.normalize(raw_events[0])

    assert ConnectorCall.objects.filter(system="business_central", operation="get salesInvoices").count() == reads_before + 1  # read again
    assert envelope["type"] == "invoice.posted.v1" and envelope["source"] == "business_central"
    assert envelope["data"]["erp_invoice_id"] == invoice_id and envelope["data"]["invoice_number"].startswith("PS-INV")
    assert (envelope["data"]["total"], envelope["data"]["amount_remaining"], envelope["data"]["status"]) == ("450.00", "450.00", "open")
    assert validate_envelope(envelope) == []
    assert bc_server.deliver()["sent"] == 0  # delivered once


def test_notifications_wait_for_the_delay(bc, bc_server, receiver):
    bc.subscribe(notification_url=receiver.url, entity_set="salesInvoices")  # BC's 30 s delay
    post_an_invoice(bc)

    assert bc_server.deliver()["sent"] == 0
    assert receiver.bodies == [] and Notification.objects.filter(delivered_at__isnull=True).exists()


def test_many_changes_are_one_collection_notification_and_the_connector_reads_the_collection(bc, bc_server, receiver):
    bc_server.settings(notification_delay_seconds=0, collection_threshold=2)
    bc.subscribe(notification_url=receiver.url, entity_set="salesInvoices")
    invoices = {post_an_invoice(bc) for _ in range(3)}

    bc_server.deliver()

    [item] = receiver.notifications()
    assert item["changeType"] == "collection" and "/salesInvoices?$filter=lastModifiedDateTime" in item["resource"]
    envelopes = bc.normalize(bc.verify_webhook(receiver.bodies[0], {})[0])
    assert {e["data"]["erp_invoice_id"] for e in envelopes} == invoices


def test_a_subscriber_answering_5xx_is_retried_and_one_answering_4xx_loses_the_subscription(bc, bc_server, receiver):
    bc_server.settings(notification_delay_seconds=0)
    sub = bc.subscribe(notification_url=receiver.url, entity_set="customers")
    bc.upsert_customer(customer={"name": "Pied Piper", "currency": "USD"}, external_id=f"CUS-{uuid.uuid4().hex[:8].upper()}")
    receiver.status = 503

    first = bc_server.deliver()

    pending = Notification.objects.get(delivered_at__isnull=True)
    assert first["retrying"] == 1 and pending.attempts == 1 and pending.next_attempt_at is not None
    receiver.status = 400
    Notification.objects.update(next_attempt_at=None)  # its retry is due

    second = bc_server.deliver()

    assert second["deleted_subscriptions"] == [sub["subscriptionId"]]
    assert not Subscription.objects.exists() and len(receiver.bodies) == 2


def test_a_notification_carrying_another_client_state_is_refused(bc):
    body = {
        "value": [
            {
                "subscriptionId": "a" * 32,
                "clientState": "not-ours",
                "expirationDateTime": "2026-03-06T00:00:00Z",
                "resource": f"api/v2.0/companies({COMPANY})/salesInvoices({uuid.uuid4()})",
                "changeType": "updated",
                "lastModifiedDateTime": "2026-03-03T00:00:00.000Z",
            }
        ]
    }

    with pytest.raises(ConnectorError) as caught:
        bc.verify_webhook(json.dumps(body).encode(), {})
    assert caught.value.error_class == ErrorClass.AUTH

    with pytest.raises(ConnectorError) as malformed:
        bc.verify_webhook(b'{"value": [{"changeType": "exploded"}]}', {})
    assert malformed.value.error_class == ErrorClass.VALIDATION


def test_a_notification_for_a_deleted_draft_normalizes_to_nothing(bc):
    raw = {"id": "x", "type": "salesInvoices.updated", "occurred_at": "2026-03-03T00:00:00Z", "payload": {"id": str(uuid.uuid4())}}
    assert bc.normalize(raw) == []
