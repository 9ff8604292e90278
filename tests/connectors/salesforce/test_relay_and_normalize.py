"""A deal closed in the sandbox reaches the hub as signed change events and becomes canonical events."""

from __future__ import annotations

import json

import pytest

from sandboxes.salesforce import simulate
from sandboxes.salesforce.models import ChangeEvent
from sync.canonical.events import validate_envelope
from sync.connectors.errors import ConnectorError

pytestmark = pytest.mark.django_db(transaction=True)

LINES = [
    {"sku": "PLAT-PRO", "quantity": 25, "unit_price": "79.00"},
    {"sku": "SUP-PREM", "quantity": 1, "unit_price": "4800.00"},
    {"sku": "ONB-PRO", "quantity": 1, "unit_price": "2500.00"},
]


def deliver(connector, receiver) -> list[dict]:
    """Relay pending events to the receiver, verify each delivery, normalise every raw event."""
    start = len(receiver.requests)
    simulate.relay_pending_events(url=receiver.url)
    envelopes = []
    for delivery in receiver.requests[start:]:
        for raw in connector.verify_webhook(delivery["body"], delivery["headers"]):
            envelopes.extend(connector.normalize(raw))
    return envelopes


def by_type(envelopes: list[dict], kind: str) -> dict[str, dict]:
    return {e["id"]: e for e in envelopes if e["type"] == kind}


def test_a_closed_won_deal_becomes_one_valid_order_closed_won_event(connector, receiver):
    deal = simulate.close_won_deal(account_name="Stark Robotics", lines=LINES, currency="EUR", email="ap@stark.example")

    envelopes = deliver(connector, receiver)

    assert all(validate_envelope(e) == [] for e in envelopes), [validate_envelope(e) for e in envelopes]
    orders = by_type(envelopes, "order.closed_won.v1")
    assert list(orders) == [f"salesforce:order.closed_won.v1:{deal['order_id']}"]
    data = next(iter(orders.values()))["data"]
    assert data["order_number"] == deal["order_number"] and data["crm_record_id"] == deal["order_id"]
    assert data["account"] == {**data["account"], "external_id": deal["account_id"], "name": "Stark Robotics", "email": "ap@stark.example"}
    assert data["currency"] == "EUR" and data["term_months"] == 12 and data["legal_entity"] == "DE01"
    assert data["total_amount"] == "9275.00"
    assert [(l["sku"], l["quantity"], l["unit_price"], l["billing"], l.get("interval")) for l in data["lines"]] == [
        ("PLAT-PRO", "25", "79.00", "recurring", "month"),
        ("SUP-PREM", "1", "4800.00", "recurring", "year"),
        ("ONB-PRO", "1", "2500.00", "one_time", None),
    ]
    customers = by_type(envelopes, "customer.upserted.v1")
    assert [c["data"]["account"]["external_id"] for c in customers.values()] == [deal["account_id"]]


def test_the_relay_signs_the_raw_body_and_a_tampered_body_is_rejected(connector, receiver):
    simulate.close_won_deal(account_name="Wayne Logistics", lines=LINES[:1])
    simulate.relay_pending_events(url=receiver.url)
    delivery = receiver.requests[0]

    assert delivery["headers"]["X-Q2C-Signature"].startswith("t=") and ",v1=" in delivery["headers"]["X-Q2C-Signature"]
    assert len(connector.verify_webhook(delivery["body"], delivery["headers"])) == len(json.loads(delivery["body"])["events"])
    tampered = delivery["body"].replace(b"Wayne Logistics", b"Wayne Logistix")
    with pytest.raises(ConnectorError) as bad:
        connector.verify_webhook(tampered, delivery["headers"])
    with pytest.raises(ConnectorError) as unsigned:
        connector.verify_webhook(delivery["body"], {"Content-Type": "application/json"})
    assert bad.value.error_class == "auth" and unsigned.value.error_class == "auth"


def test_raw_events_carry_the_cometd_message_and_replay_ids(connector, receiver):
    simulate.close_won_deal(account_name="Hooli Analytics", lines=LINES[:1])
    simulate.relay_pending_events(url=receiver.url)

    raw = connector.verify_webhook(receiver.requests[0]["body"], receiver.requests[0]["headers"])

    order_create = next(r for r in raw if r["type"] == "Order:CREATE")
    header = order_create["payload"]["payload"]["ChangeEventHeader"]
    assert order_create["id"] == f"Order:{order_create['payload']['event']['replayId']}"
    assert header["changeOrigin"] == "com/salesforce/api/rest/60.0;client=SfdcInternalAPI/"
    assert order_create["occurred_at"].endswith("+00:00") and header["commitTimestamp"] > 0
    assert set(header) >= {
        "entityName",
        "recordIds",
        "changeType",
        "changeOrigin",
        "transactionKey",
        "sequenceNumber",
        "commitTimestamp",
        "commitNumber",
        "commitUser",
        "changedFields",
        "nulledFields",
        "diffFields",
    }


def test_the_echo_of_our_own_status_write_is_dropped(connector, receiver):
    deal = simulate.close_won_deal(account_name="Vandelay Foods", lines=LINES[:1])
    deliver(connector, receiver)

    connector.set_status(
        object_type="Order", external_id=deal["order_id"], fields={"Status": "Activated", "Q2C_Status__c": "Activated"}, idempotency_key="act-1"
    )
    start = len(receiver.requests)
    envelopes = deliver(connector, receiver)

    messages = [m for d in receiver.requests[start:] for m in json.loads(d["body"])["events"]]
    echo = [m for m in messages if m["payload"]["ChangeEventHeader"]["entityName"] == "Order"]
    assert echo and echo[0]["payload"]["ChangeEventHeader"]["changeOrigin"] == "com/salesforce/api/rest/60.0;client=sandbox-client-id"
    assert echo[0]["payload"]["ChangeEventHeader"]["changedFields"] == ["LastModifiedDate", "Q2C_Status__c", "Status", "StatusCode"]
    assert envelopes == []


def test_a_failed_delivery_stays_pending_with_backoff(receiver):
    simulate.close_won_deal(account_name="Soylent Capital", lines=LINES[:1])
    receiver.status = 503

    delivered = simulate.relay_pending_events(url=receiver.url)
    again = simulate.relay_pending_events(url=receiver.url)

    assert delivered == 0 and again == 0 and len(receiver.requests) == 1
    pending = ChangeEvent.objects.filter(status=ChangeEvent.PENDING)
    assert pending.count() == ChangeEvent.objects.count() > 0
    assert set(pending.values_list("attempts", flat=True)) == {1} and "HTTP 503" in pending.first().last_error
    ChangeEvent.objects.update(next_attempt_at=None)
    receiver.status = 200
    assert simulate.relay_pending_events(url=receiver.url) == ChangeEvent.objects.count()
    assert not ChangeEvent.objects.filter(status=ChangeEvent.PENDING).exists()


def test_amendment_renewal_and_cancellation_become_subscription_events(connector, receiver):
    deal = simulate.close_won_deal(account_name="Tyrell Systems", lines=LINES[:2])
    deliver(connector, receiver)

    amendment = simulate.amend_order(order_id=deal["order_id"], changes=[{"sku": "PLAT-PRO", "quantity_delta": 5}])
    renewal = simulate.renew_contract(order_id=deal["order_id"], term_months=12)
    simulate.cancel_contract(order_id=deal["order_id"], reason="Budget cuts")
    envelopes = deliver(connector, receiver)

    assert all(validate_envelope(e) == [] for e in envelopes), [validate_envelope(e) for e in envelopes]
    amended = by_type(envelopes, "subscription.amended.v1")[f"salesforce:subscription.amended.v1:{amendment['order_id']}"]["data"]
    assert amended["order_number"] == deal["order_number"] and amended["amendment_id"] == amendment["order_number"]
    assert [(c["sku"], c["quantity"], c["unit_price"]) for c in amended["changes"]] == [("PLAT-PRO", "30", "79.00")]
    assert amended["arr_delta"] == "4740.00"  # 5 seats × 79.00 × 12
    renewed = by_type(envelopes, "subscription.renewed.v1")[f"salesforce:subscription.renewed.v1:{renewal['order_id']}"]["data"]
    assert renewed["order_number"] == deal["order_number"] and renewed["term_months"] == 12
    assert renewed["arr"] == "28500.00"  # 25 × 79 × 12 + 4800 (renewal copies the original order's lines)
    cancelled = list(by_type(envelopes, "subscription.cancelled.v1").values())
    assert len(cancelled) == 1 and cancelled[0]["data"]["order_number"] == deal["order_number"] and cancelled[0]["data"]["reason"] == "Budget cuts"
    assert not by_type(envelopes, "order.closed_won.v1")


def test_a_platform_event_or_a_single_message_is_accepted(connector, sf_server):
    from sandboxes.salesforce.simulate import sign

    deal = simulate.close_won_deal(account_name="Cyberdyne Labs", lines=LINES[:1])
    body = json.dumps(
        {
            "channel": "/event/Order_Closed_Won__e",
            "data": {
                "schema": "x",
                "event": {"replayId": 7},
                "payload": {"Entity__c": "Order", "Record_Id__c": deal["order_id"], "Change_Type__c": "CREATE", "CreatedDate": "2026-11-23T10:00:00Z"},
            },
        }
    ).encode()

    raw = connector.verify_webhook(body, {"X-Q2C-Signature": sign(body)})
    envelopes = connector.normalize(raw[0])

    assert raw[0]["id"] == "Order:7" and raw[0]["type"] == "Order:CREATE"
    assert [e["data"]["order_number"] for e in envelopes] == [deal["order_number"]]
