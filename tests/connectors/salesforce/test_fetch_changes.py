"""Polling: fetch_changes pages through SOQL and yields the webhook's raw-event shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandboxes.salesforce import simulate
from sync.canonical.events import validate_envelope

pytestmark = pytest.mark.django_db(transaction=True)


def test_fetch_changes_pages_oldest_first_and_respects_since(connector, org):
    org(query_batch_size=2)
    before = datetime.now(UTC) - timedelta(seconds=1)
    deals = [simulate.close_won_deal(account_name=f"Polled {n}", lines=[{"sku": "PLAT-STD", "quantity": n + 1, "unit_price": "39.00"}]) for n in range(5)]

    events = list(connector.fetch_changes(object_type="Order", since=before))
    later = list(connector.fetch_changes(object_type="Order", since=datetime.now(UTC) + timedelta(seconds=1)))

    assert [e["payload"]["payload"]["ChangeEventHeader"]["recordIds"][0] for e in events] == [d["order_id"] for d in deals]
    assert later == []
    stamps = [e["occurred_at"] for e in events]
    assert stamps == sorted(stamps)
    assert {e["type"] for e in events} == {"Order:UPDATE"}  # each order got its TotalAmount roll-up after creation
    assert all(set(e) == {"id", "type", "occurred_at", "payload"} and e["id"].startswith("Order:poll:") for e in events)


def test_polled_orders_normalise_to_the_same_canonical_events_as_webhooks(connector, receiver):
    before = datetime.now(UTC) - timedelta(seconds=1)
    deal = simulate.close_won_deal(account_name="Nakatomi Holdings", lines=[{"sku": "PLAT-ENT", "quantity": 1, "unit_price": "24000.00"}])
    simulate.relay_pending_events(url=receiver.url)
    pushed = [e for d in receiver.requests for raw in connector.verify_webhook(d["body"], d["headers"]) for e in connector.normalize(raw)]

    polled = [e for raw in connector.fetch_changes(object_type="Order", since=before) for e in connector.normalize(raw)]
    accounts = [e for raw in connector.fetch_changes(object_type="Account", since=before) for e in connector.normalize(raw)]

    assert [e["id"] for e in polled] == [f"salesforce:order.closed_won.v1:{deal['order_id']}"]
    pushed_order = next(e for e in pushed if e["type"] == "order.closed_won.v1")
    assert polled[0] == pushed_order
    assert [a["data"]["account"]["name"] for a in accounts] == ["Nakatomi Holdings"] and validate_envelope(accounts[0]) == []


def test_fetch_changes_limit_caps_the_rows(connector):
    for n in range(3):
        simulate.close_won_deal(account_name=f"Capped {n}", lines=[{"sku": "PLAT-STD", "quantity": 1, "unit_price": "39.00"}])

    assert len(list(connector.fetch_changes(object_type="Account", since=None, limit=2))) == 2
