"""SuiteQL through the sandbox: paging, the query forms the connector issues, polling for changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sandboxes.netsuite.models import Record
from sync.canonical.events import validate_envelope
from sync.models import ConnectorCall

pytestmark = pytest.mark.django_db(transaction=True)


def suiteql(raw, q: str, **params):
    return raw.post(f"{raw.base}/query/v1/suiteql", params=params, json={"q": q}, headers={"Prefer": "transient"})


@pytest.fixture
def many_customers(db):
    now = timezone.now()
    Record.objects.bulk_create(
        Record(
            record_type="customer",
            external_id=f"BULK-{i:05d}",
            created_at=now,
            last_modified=now,
            data={"companyName": f"Customer {i:05d}", "subsidiary": {"id": "1"}, "email": f"c{i}@example.com"},
        )
        for i in range(1150)
    )
    return 1150


def test_query_pages_through_more_than_1000_rows(netsuite, many_customers):
    rows = list(netsuite.query(q="SELECT id, externalid FROM customer WHERE externalid IS NOT NULL ORDER BY externalid"))
    assert len(rows) == many_customers
    assert len({row["id"] for row in rows}) == many_customers
    assert [row["externalid"] for row in rows] == sorted(row["externalid"] for row in rows)
    assert ConnectorCall.objects.filter(system="netsuite", operation="suiteql").count() == 2


def test_a_page_says_where_the_next_one_is(raw, many_customers):
    first = suiteql(raw, "SELECT id FROM customer", limit=1000, offset=0).json()
    assert (first["count"], first["hasMore"], first["offset"], first["totalResults"]) == (1000, True, 0, many_customers)
    links = {link["rel"]: link["href"] for link in first["links"]}
    assert links["next"].endswith("limit=1000&offset=1000")
    assert links["last"].endswith("limit=1000&offset=1000")
    second = suiteql(raw, "SELECT id FROM customer", limit=1000, offset=1000).json()
    assert (second["count"], second["hasMore"]) == (150, False)
    assert not {r["id"] for r in first["items"]} & {r["id"] for r in second["items"]}


def test_suiteql_needs_prefer_transient(raw):
    response = raw.post(f"{raw.base}/query/v1/suiteql", json={"q": "SELECT id FROM customer"})
    assert response.status_code == 400
    assert response.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_HEADER"


def test_a_page_holds_at_most_1000_rows(raw):
    assert suiteql(raw, "SELECT id FROM customer", limit=1001).status_code == 400


def test_an_unknown_column_is_an_invalid_search_query(raw):
    response = suiteql(raw, "SELECT id, shoesize FROM customer")
    assert response.status_code == 400
    detail = response.json()["o:errorDetails"][0]
    assert detail["o:errorCode"] == "INVALID_PARAMETER"
    assert "Invalid search query" in detail["detail"] and "shoesize" in detail["detail"]


def test_where_and_order_by_filter_and_sort(raw, many_customers):
    rows = suiteql(raw, "SELECT externalid, companyname FROM customer WHERE externalid >= 'BULK-01140' AND subsidiary = '1' ORDER BY externalid DESC").json()[
        "items"
    ]
    assert [r["externalid"] for r in rows] == [f"BULK-{i:05d}" for i in range(1149, 1139, -1)]
    one = suiteql(raw, "SELECT id, email FROM customer WHERE email = 'c7@example.com'").json()
    assert one["count"] == 1 and one["items"][0]["email"] == "c7@example.com"


def an_invoice(number: str) -> dict:
    return {
        "invoice_number": number,
        "currency": "USD",
        "total": "90.00",
        "finalized_at": "2026-06-01T08:00:00Z",
        "erp_subsidiary_id": "1",
        "lines": [{"sku": "PLAT-SEAT", "description": "Seats", "quantity": "2", "unit_amount": "45.00", "amount": "90.00"}],
    }


def test_fetch_changes_finds_invoices_changed_since_a_time_oldest_first(netsuite):
    customer = netsuite.upsert_customer(customer={"name": "Hooli", "currency": "USD", "erp_subsidiary_id": "1"}, external_id="HUB-CUS-H").external_id
    old = netsuite.upsert_invoice(invoice=an_invoice("INV-OLD"), customer_id=customer, external_id="HUB-INV-OLD")
    Record.objects.filter(id=int(old.external_id)).update(last_modified=timezone.now() - timedelta(hours=2))
    new = netsuite.upsert_invoice(invoice=an_invoice("INV-NEW"), customer_id=customer, external_id="HUB-INV-NEW")
    netsuite.upsert_sales_order(
        order={
            "order_number": "ORD-X",
            "account": {"external_id": "A", "name": "Hooli"},
            "currency": "USD",
            "closed_won_at": "2026-06-01T08:00:00Z",
            "lines": [{"sku": "PLAT-SEAT", "quantity": "1", "unit_price": "45"}],
        },
        customer_id=customer,
        external_id="HUB-SO-X",
    )

    recent = list(netsuite.fetch_changes(object_type="invoice", since=timezone.now() - timedelta(minutes=10)))
    assert [event["payload"]["tranid"] for event in recent] == ["INV-NEW"]
    everything = list(netsuite.fetch_changes(object_type="invoice", since=None))
    assert [event["payload"]["id"] for event in everything] == [old.external_id, new.external_id]
    assert len({event["id"] for event in everything}) == 2


def test_an_erp_invoice_change_normalizes_to_a_valid_invoice_posted_event(netsuite):
    customer = netsuite.upsert_customer(customer={"name": "Hooli", "currency": "USD", "erp_subsidiary_id": "1"}, external_id="HUB-CUS-H2").external_id
    posted = netsuite.upsert_invoice(invoice=an_invoice("INV-77"), customer_id=customer, external_id="HUB-INV-77")
    [raw_event] = list(netsuite.fetch_changes(object_type="invoice", since=None))
    [envelope] = netsuite.normalize(raw_event)
    assert validate_envelope(envelope) == []
    assert envelope["type"] == "invoice.posted.v1" and envelope["source"] == "netsuite"
    assert envelope["data"]["invoice_number"] == "INV-77"
    assert envelope["data"]["erp_invoice_id"] == posted.external_id
    assert (envelope["data"]["total"], envelope["data"]["currency"], envelope["data"]["status"]) == ("90.00", "USD", "open")
    # a later edit of the same invoice is the same posting (same envelope id)
    netsuite.upsert_invoice(invoice={**an_invoice("INV-77"), "due_date": "2026-07-01"}, customer_id=customer, external_id="HUB-INV-77")
    [again] = netsuite.normalize(list(netsuite.fetch_changes(object_type="invoice", since=None))[0])
    assert again["id"] == envelope["id"]


def test_non_invoice_changes_are_not_postings(netsuite):
    assert netsuite.normalize({"id": "x", "type": "salesOrder.modified", "occurred_at": "2026-01-01T00:00:00Z", "payload": {"id": "1"}}) == []
