"""normalize(): Stripe events (from the sandbox and Stripe's own fixtures) → valid canonical envelopes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sandboxes.stripe import simulate
from sandboxes.stripe.models import SandboxEvent
from sync.canonical.events import validate_envelope
from sync.connectors.stripe import mapper

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stripe" / "fixtures3.json"  # vendored from shared/


def _raw(event: dict) -> dict:
    return {"id": event["id"], "type": event["type"], "occurred_at": mapper.ts_to_iso(event["created"]), "payload": event}


def _events(kind: str) -> list[dict]:
    return [row.data for row in SandboxEvent.objects.filter(type=kind).order_by("seq")]


def _normalized(connector, kind: str) -> list[dict]:
    envelopes = [env for event in _events(kind) for env in connector.normalize(_raw(event))]
    for env in envelopes:
        assert validate_envelope(env) == [], (env, validate_envelope(env))
    return envelopes


@pytest.mark.django_db(transaction=True)
def test_our_own_writes_do_not_come_back_as_amendments_or_cancellations(connector, customer_id, order):
    sub_id = connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="s").external_id
    connector.update_subscription(subscription_id=sub_id, items=[{"sku": "PLAT-PRO", "quantity": "15", "unit_price": "49.00"}], idempotency_key="a")
    connector.cancel_subscription(subscription_id=sub_id, idempotency_key="c")
    assert _events("customer.subscription.updated") and _events("customer.subscription.deleted")
    assert _normalized(connector, "customer.subscription.updated") == []
    assert _normalized(connector, "customer.subscription.deleted") == []


@pytest.mark.django_db(transaction=True)
def test_a_dashboard_quantity_change_is_an_amendment(connector, customer_id, order):
    sub_id = connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="s").external_id
    simulate.change_subscription_in_dashboard(sub_id, sku="PLAT-PRO", quantity=14)
    [amended] = _normalized(connector, "customer.subscription.updated")
    assert amended["type"] == "subscription.amended.v1" and amended["source"] == "stripe"
    assert amended["data"]["order_number"] == "SO-1001" and amended["data"]["currency"] == "USD"
    assert amended["data"]["changes"] == [{"sku": "PLAT-PRO", "quantity": "14", "unit_price": "49.00", "billing": "recurring", "interval": "month"}]
    assert amended["data"]["arr_delta"] == "2352.00"  # 4 seats × 49 × 12


@pytest.mark.django_db(transaction=True)
def test_a_billing_period_roll_is_not_an_amendment(connector, customer_id, order):
    from datetime import timedelta

    from django.utils import timezone

    connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="s")
    simulate.advance_billing(now=timezone.now() + timedelta(days=31), pay_failure_rate=0.0)
    assert _events("customer.subscription.updated")
    assert _normalized(connector, "customer.subscription.updated") == []


@pytest.mark.django_db(transaction=True)
def test_a_dashboard_cancellation_is_a_cancelled_subscription(connector, customer_id, order):
    sub_id = connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="s").external_id
    simulate.cancel_subscription_in_dashboard(sub_id, feedback="too_expensive")
    [cancelled] = _normalized(connector, "customer.subscription.deleted")
    assert cancelled["type"] == "subscription.cancelled.v1"
    assert cancelled["data"]["order_number"] == "SO-1001" and cancelled["data"]["reason"] == "too_expensive"
    assert cancelled["data"]["arr"] == "7080.00"


@pytest.mark.django_db(transaction=True)
def test_invoice_payments_and_credit_notes_become_canonical_events(connector, customer_id, order):
    connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="s")
    simulate.advance_billing(pay_failure_rate=1.0)  # first attempt fails
    simulate.advance_billing(pay_failure_rate=0.0)  # not yet due for retry: nothing happens
    note = simulate.issue_credit_note(amount=4900, reason="order_change")

    [finalized] = _normalized(connector, "invoice.finalized")
    data = finalized["data"]
    assert (data["currency"], data["total"], data["subtotal"], data["tax"]) == ("USD", "1690.00", "1690.00", "0.00")
    assert data["order_number"] == "SO-1001" and data["billing_customer_id"] == customer_id
    assert {(l["sku"], l["quantity"], l["amount"]) for l in data["lines"]} == {("PLAT-PRO", "10", "490.00"), ("SUPPORT-GOLD", "1", "1200.00")}
    [failed] = _normalized(connector, "invoice.payment_failed")
    assert failed["type"] == "payment.failed.v1" and failed["data"]["amount"] == "1690.00"
    assert failed["data"]["invoice_number"] == data["invoice_number"]
    assert _normalized(connector, "invoice.paid") == []
    [memo] = _normalized(connector, "credit_note.created")
    assert memo["type"] == "credit_memo.issued.v1"
    assert memo["data"]["credit_memo_number"] == note["number"] and memo["data"]["amount"] == "49.00"
    assert memo["data"]["invoice_number"] == data["invoice_number"] and memo["data"]["order_number"] == "SO-1001"


@pytest.mark.django_db(transaction=True)
def test_events_with_no_canonical_meaning_are_ignored(connector, customer_id):
    assert _events("customer.created")
    assert _normalized(connector, "customer.created") == []


# --- Stripe's own example objects (fixtures3.json) wrapped in Stripe's event envelope --------------
@pytest.fixture(scope="module")
def resources():
    return json.loads(FIXTURES.read_text())["resources"]


def _event(resources, kind: str, obj: dict, previous: dict | None = None, key: str | None = None) -> dict:
    event = copy.deepcopy(resources["event"])
    event.update({"type": kind, "api_version": "2025-03-31.basil", "request": {"id": "req_1", "idempotency_key": key}})
    event["data"] = {"object": obj, **({"previous_attributes": previous} if previous is not None else {})}
    return event


def test_stripes_fixture_invoice_finalized_is_a_valid_invoice_event(resources):
    invoice = copy.deepcopy(resources["invoice"])
    invoice.update(
        {
            "status": "open",
            "number": "7FE1103-0001",
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {"subscription": "sub_1", "metadata": {"order_number": "SO-9"}},
            },
        }
    )
    [env] = mapper.normalize_event(_event(resources, "invoice.finalized", invoice))
    assert validate_envelope(env) == []
    assert env["data"]["total"] == "10.00" and env["data"]["currency"] == "USD" and env["data"]["order_number"] == "SO-9"
    assert env["data"]["billing_subscription_id"] == "sub_1"


def test_stripes_fixture_invoice_paid_and_failed_are_valid_payment_events(resources):
    invoice = copy.deepcopy(resources["invoice"])
    invoice.update({"status": "paid", "number": "7FE1103-0002", "amount_paid": 1000, "amount_remaining": 0})
    invoice["status_transitions"]["paid_at"] = 1743500000
    [paid] = mapper.normalize_event(_event(resources, "invoice.paid", invoice))
    [failed] = mapper.normalize_event(_event(resources, "invoice.payment_failed", {**invoice, "status": "open", "attempt_count": 1, "amount_remaining": 1000}))
    assert validate_envelope(paid) == [] and validate_envelope(failed) == []
    assert paid["data"]["amount"] == "10.00" and paid["data"]["received_at"] == "2025-04-01T09:33:20Z"
    assert failed["data"]["amount"] == "10.00"


def test_stripes_fixture_credit_note_is_a_valid_credit_memo(resources):
    [env] = mapper.normalize_event(
        _event(resources, "credit_note.created", copy.deepcopy(resources["credit_note"])),
        fetch_invoice=lambda invoice_id: {"id": invoice_id, "number": "ABCD-1234"},
    )
    assert validate_envelope(env) == []
    assert env["data"]["credit_memo_number"] == "ABCD-1234-CN-01" and env["data"]["amount"] == "16.90" and env["data"]["invoice_number"] == "ABCD-1234"


def test_stripes_fixture_subscription_quantity_change_is_an_amendment_unless_it_is_our_echo(resources):
    sub = copy.deepcopy(resources["subscription"])
    sub.update({"status": "active", "metadata": {"order_number": "SO-9"}})
    previous = {"items": copy.deepcopy(sub["items"])}
    sub["items"]["data"][0]["quantity"] = 4
    [env] = mapper.normalize_event(_event(resources, "customer.subscription.updated", sub, previous))
    assert validate_envelope(env) == []
    assert env["data"]["changes"] == [{"sku": "prod_QXg1hqf4jFNsqG", "quantity": "4", "unit_price": "20.00", "billing": "recurring", "interval": "month"}]
    assert env["data"]["arr_delta"] == "720.00"
    assert mapper.normalize_event(_event(resources, "customer.subscription.updated", sub, previous, key="q2c-flow-1")) == []
    assert mapper.normalize_event(_event(resources, "customer.subscription.updated", sub, {"metadata": {}})) == []


def test_stripes_fixture_subscription_deleted_is_a_cancellation(resources):
    sub = copy.deepcopy(resources["subscription"])
    sub.update({"status": "canceled", "metadata": {"order_number": "SO-9"}})
    [env] = mapper.normalize_event(_event(resources, "customer.subscription.deleted", sub))
    assert validate_envelope(env) == [] and env["type"] == "subscription.cancelled.v1"
    assert mapper.normalize_event(_event(resources, "plan.created", resources["plan"])) == []
