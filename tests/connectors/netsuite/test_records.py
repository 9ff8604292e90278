"""The sandbox's REST Record Service, called as any TBA client would call NetSuite."""

from __future__ import annotations

import pytest

from sandboxes.netsuite.models import ExternalIdLedger, Record

pytestmark = pytest.mark.django_db(transaction=True)


def item_id(raw, sku: str) -> str:
    rows = raw.post(f"{raw.base}/query/v1/suiteql", json={"q": f"SELECT id FROM item WHERE itemid = '{sku}'"}, headers={"Prefer": "transient"}).json()["items"]
    return rows[0]["id"]


def put_customer(raw, external_id: str, name: str = "Globex Corporation"):
    return raw.put(f"{raw.base}/record/v1/customer/eid:{external_id}", json={"companyName": name, "subsidiary": {"id": "2"}, "email": "ap@globex.example"})


def assert_netsuite_error(response, status: int, code: str, path: str | None = None):
    assert response.status_code == status
    body = response.json()
    assert set(body) >= {"type", "title", "status", "o:errorDetails"}
    assert body["status"] == status
    detail = body["o:errorDetails"][0]
    assert detail["o:errorCode"] == code
    if path is not None:
        assert detail["o:errorPath"] == path
    return detail


def test_post_creates_a_record_and_answers_204_with_its_location(raw):
    response = raw.post(f"{raw.base}/record/v1/customer", json={"companyName": "Umbrella plc", "subsidiary": {"id": "2"}})
    assert response.status_code == 204
    internal_id = response.headers["Location"].rsplit("/", 1)[1]
    assert response.headers["Location"].endswith(f"/services/rest/record/v1/customer/{internal_id}")
    record = raw.get(f"{raw.base}/record/v1/customer/{internal_id}").json()
    assert record["companyName"] == "Umbrella plc"
    assert record["currency"]["refName"] == "GBP"  # from the UK subsidiary


def test_put_by_external_id_twice_keeps_one_record_and_applies_the_second(raw):
    first = put_customer(raw, "CUST-42", "Globex Corporation")
    second = put_customer(raw, "CUST-42", "Globex Corp. (renamed)")
    assert first.status_code == second.status_code == 204
    assert first.headers["Location"] == second.headers["Location"]
    assert Record.objects.filter(record_type="customer", external_id="CUST-42").count() == 1
    ledger = ExternalIdLedger.objects.get(record_type="customer", external_id="CUST-42")
    assert (ledger.creates, ledger.updates) == (1, 1)
    assert raw.get(f"{raw.base}/record/v1/customer/eid:CUST-42").json()["companyName"] == "Globex Corp. (renamed)"


def test_put_eid_then_get_eid_round_trips_a_sales_order(raw):
    customer = put_customer(raw, "CUST-7").headers["Location"].rsplit("/", 1)[1]
    seat = item_id(raw, "PLAT-SEAT")
    body = {
        "entity": {"id": customer},
        "tranDate": "2026-02-01",
        "memo": "Order ORD-7",
        "item": {"items": [{"item": {"id": seat}, "quantity": 12, "rate": 45.125, "amount": 541.50, "description": "Seats"}]},
    }
    assert raw.put(f"{raw.base}/record/v1/salesOrder/eid:SO-7", json=body).status_code == 204
    got = raw.get(f"{raw.base}/record/v1/salesOrder/eid:SO-7", params={"expandSubResources": "true"}).json()
    assert got["externalId"] == "SO-7"
    assert got["entity"]["id"] == customer
    assert got["subsidiary"]["id"] == "2" and got["currency"]["refName"] == "GBP"
    assert (got["tranDate"], got["memo"], got["total"]) == ("2026-02-01", "Order ORD-7", 541.5)
    line = got["item"]["items"][0]
    assert (line["item"]["id"], line["item"]["refName"], line["quantity"], line["rate"], line["amount"]) == (seat, "PLAT-SEAT", 12, 45.125, 541.5)
    assert got["status"]["refName"] == "Pending Fulfillment"


def test_get_without_expansion_links_the_item_sublist(raw):
    customer = put_customer(raw, "CUST-8").headers["Location"].rsplit("/", 1)[1]
    raw.put(
        f"{raw.base}/record/v1/salesOrder/eid:SO-8",
        json={"entity": {"id": customer}, "item": {"items": [{"item": {"id": item_id(raw, "PLAT-API")}, "rate": 500}]}},
    )
    got = raw.get(f"{raw.base}/record/v1/salesOrder/eid:SO-8").json()
    assert list(got["item"]) == ["links"]


def test_an_invalid_item_reference_is_invalid_content_at_its_path(raw):
    customer = put_customer(raw, "CUST-9").headers["Location"].rsplit("/", 1)[1]
    response = raw.put(
        f"{raw.base}/record/v1/salesOrder/eid:SO-9",
        json={
            "entity": {"id": customer},
            "item": {"items": [{"item": {"id": item_id(raw, "PLAT-SEAT")}, "quantity": 1, "rate": 45}, {"item": {"id": "9999"}, "quantity": 1, "rate": 1}]},
        },
    )
    detail = assert_netsuite_error(response, 400, "INVALID_CONTENT", "item.items[1].item")
    assert "Invalid Field Value 9999" in detail["detail"]
    assert not Record.objects.filter(external_id="SO-9").exists()


def test_a_missing_required_field_is_refused_with_its_path(raw):
    response = raw.put(f"{raw.base}/record/v1/customer/eid:CUST-10", json={"companyName": "No Subsidiary Ltd"})
    detail = assert_netsuite_error(response, 400, "USER_ERROR", "subsidiary")
    assert "Primary Subsidiary" in detail["detail"]


def test_an_unknown_customer_reference_is_refused(raw):
    response = raw.put(
        f"{raw.base}/record/v1/invoice/eid:INV-1",
        json={"entity": {"id": "424242"}, "item": {"items": [{"item": {"id": item_id(raw, "PLAT-SEAT")}, "rate": 1}]}},
    )
    assert_netsuite_error(response, 400, "INVALID_CONTENT", "entity")


def test_a_missing_record_is_404_in_netsuites_shape(raw):
    assert_netsuite_error(raw.get(f"{raw.base}/record/v1/salesOrder/eid:NOPE"), 404, "NONEXISTENT_ID")
    assert_netsuite_error(raw.get(f"{raw.base}/record/v1/salesOrder/999999"), 404, "NONEXISTENT_ID")


def test_patch_updates_and_delete_removes(raw):
    location = put_customer(raw, "CUST-11").headers["Location"]
    internal_id = location.rsplit("/", 1)[1]
    assert raw.patch(f"{raw.base}/record/v1/customer/{internal_id}", json={"email": "billing@globex.example"}).status_code == 204
    assert raw.get(location).json()["email"] == "billing@globex.example"
    assert raw.delete(f"{raw.base}/record/v1/customer/eid:CUST-11").status_code == 204
    assert raw.get(location).status_code == 404


def test_put_needs_an_external_id(raw):
    internal_id = put_customer(raw, "CUST-12").headers["Location"].rsplit("/", 1)[1]
    assert_netsuite_error(raw.put(f"{raw.base}/record/v1/customer/{internal_id}", json={"companyName": "X"}), 400, "INVALID_REQUEST")


def test_a_payment_applied_to_an_invoice_marks_it_paid(raw):
    customer = put_customer(raw, "CUST-13").headers["Location"].rsplit("/", 1)[1]
    seat = item_id(raw, "PLAT-SEAT")
    invoice = raw.put(
        f"{raw.base}/record/v1/invoice/eid:INV-13", json={"entity": {"id": customer}, "item": {"items": [{"item": {"id": seat}, "quantity": 2, "rate": 45}]}}
    )
    invoice_id = invoice.headers["Location"].rsplit("/", 1)[1]
    raw.put(
        f"{raw.base}/record/v1/customerPayment/eid:PAY-13",
        json={"customer": {"id": customer}, "payment": 90, "apply": {"items": [{"doc": {"id": invoice_id}, "apply": True, "amount": 90}]}},
    )
    got = raw.get(f"{raw.base}/record/v1/invoice/{invoice_id}").json()
    assert (got["status"]["refName"], got["amountRemaining"]) == ("Paid In Full", 0)


def test_fail_records_refuses_a_listed_sku_with_a_validation_error(raw, netsuite_server):
    customer = put_customer(raw, "CUST-14").headers["Location"].rsplit("/", 1)[1]
    netsuite_server.faults(fail_records=["SUPPORT-PREM"])
    response = raw.put(
        f"{raw.base}/record/v1/salesOrder/eid:SO-14",
        json={
            "entity": {"id": customer},
            "item": {"items": [{"item": {"id": item_id(raw, "PLAT-SEAT")}, "rate": 45}, {"item": {"id": item_id(raw, "SUPPORT-PREM")}, "rate": 1200}]},
        },
    )
    assert_netsuite_error(response, 400, "INVALID_CONTENT", "item.items[1].item")


def test_the_catalogue_is_seeded_with_skus_as_item_ids(raw):
    rows = raw.post(f"{raw.base}/query/v1/suiteql", json={"q": "SELECT itemid, itemtype FROM item ORDER BY itemid"}, headers={"Prefer": "transient"}).json()[
        "items"
    ]
    assert {"PLAT-SEAT", "PLAT-API", "SUPPORT-PREM", "ONBOARD-FEE", "USAGE-API-CALLS"} <= {r["itemid"] for r in rows}
    assert {r["itemtype"] for r in rows} == {"NonInvtPart"}


def test_concurrent_upserts_of_one_external_id_make_one_record(raw, settings):
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from .conftest import tba

    def upsert(n: int) -> str:
        with requests.Session() as session:
            session.auth = tba(settings)
            response = session.put(f"{raw.base}/record/v1/customer/eid:CUST-RACE", json={"companyName": f"Racer {n}", "subsidiary": {"id": "1"}})
            assert response.status_code == 204, response.text
            return response.headers["Location"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        locations = set(pool.map(upsert, range(12)))
    assert len(locations) == 1
    assert Record.objects.filter(record_type="customer", external_id="CUST-RACE").count() == 1
    ledger = ExternalIdLedger.objects.get(record_type="customer", external_id="CUST-RACE")
    assert (ledger.creates, ledger.updates) == (1, 11)
