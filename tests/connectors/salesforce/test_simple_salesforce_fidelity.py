"""simple-salesforce, unmodified, against the sandbox: the calls the connector relies on."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceMoreThanOneRecord, SalesforceResourceNotFound

pytestmark = pytest.mark.django_db(transaction=True)


def test_upsert_creates_with_201_then_updates_with_200_created_false(simple_sf):
    first = simple_sf.Account.upsert("External_Id__c/ACME-1", {"Name": "Acme Corp"}, raw_response=True)
    second = simple_sf.Account.upsert("External_Id__c/ACME-1", {"Name": "Acme Corporation"}, raw_response=True)

    assert first.status_code == 201 and first.json()["created"] is True
    assert second.status_code == 200 and second.json() == {"id": first.json()["id"], "success": True, "errors": [], "created": False}
    assert simple_sf.Account.get(first.json()["id"])["Name"] == "Acme Corporation"


def test_query_returns_records_with_parent_relationship_fields(simple_sf):
    account = simple_sf.Account.create({"Name": "Globex", "CurrencyIsoCode": "EUR"})
    simple_sf.Opportunity.create({"Name": "Globex deal", "AccountId": account["id"], "StageName": "Closed Won", "CloseDate": "2026-11-02", "Amount": 1200.5})

    result = simple_sf.query(
        "SELECT Id, Name, Amount, IsWon, Account.Name FROM Opportunity WHERE Account.Name = 'globex' AND CloseDate > 2026-11-01 AND IsWon = true"
    )

    assert result["totalSize"] == 1 and result["done"] is True
    row = result["records"][0]
    assert row["Name"] == "Globex deal" and row["Amount"] == 1200.5 and row["IsWon"] is True
    assert row["Account"]["Name"] == "Globex" and row["attributes"]["type"] == "Opportunity"


def test_query_all_follows_next_records_url_across_pages(simple_sf, org):
    org(query_batch_size=2)
    for n in range(5):
        simple_sf.Account.create({"Name": f"Paged {n}"})

    first = simple_sf.query("SELECT Id, Name FROM Account ORDER BY Name")
    everything = simple_sf.query_all("SELECT Id, Name FROM Account ORDER BY Name")

    assert first["done"] is False and first["nextRecordsUrl"].startswith("/services/data/v60.0/query/")
    assert [r["Name"] for r in everything["records"]] == [f"Paged {n}" for n in range(5)]


def test_missing_required_field_raises_malformed_request_with_the_error_array(simple_sf):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        simple_sf.Order.create({"EffectiveDate": "2026-11-01"})

    assert caught.value.status == 400
    assert caught.value.content == [{"message": "Required fields are missing: [AccountId]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["AccountId"]}]


def test_unknown_record_and_wrong_external_id_field_raise_resource_not_found(simple_sf):
    with pytest.raises(SalesforceResourceNotFound) as missing:
        simple_sf.Account.get("001000000000000AAA")
    with pytest.raises(SalesforceResourceNotFound) as wrong_field:
        simple_sf.Account.upsert("Not_An_External_Id__c/1", {"Name": "x"})

    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"
    assert wrong_field.value.content[0]["errorCode"] == "NOT_FOUND"


def test_upsert_matching_two_records_raises_more_than_one_record(simple_sf):
    simple_sf.Account.create({"Name": "Twin A", "External_Id__c": "TWIN"})
    simple_sf.Account.create({"Name": "Twin B", "External_Id__c": "TWIN"})

    with pytest.raises(SalesforceMoreThanOneRecord) as caught:
        simple_sf.Account.upsert("External_Id__c/TWIN", {"Name": "Which one?"})

    assert caught.value.status == 300 and len(caught.value.content) == 2


def test_composite_uses_a_reference_to_an_earlier_result(simple_sf):
    result = simple_sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {"method": "POST", "url": "/services/data/v60.0/sobjects/Account", "referenceId": "acct", "body": {"Name": "Initech"}},
                {
                    "method": "POST",
                    "url": "/services/data/v60.0/sobjects/Order",
                    "referenceId": "order",
                    "body": {"AccountId": "@{acct.id}", "EffectiveDate": "2026-11-01"},
                },
                {"method": "GET", "url": "/services/data/v60.0/sobjects/Order/@{order.id}", "referenceId": "read"},
            ],
        },
    )

    codes = [r["httpStatusCode"] for r in result["compositeResponse"]]
    assert codes == [201, 201, 200]
    account_id = result["compositeResponse"][0]["body"]["id"]
    assert result["compositeResponse"][2]["body"]["AccountId"] == account_id
    assert result["compositeResponse"][2]["body"]["Status"] == "Draft"


def test_composite_all_or_none_rolls_back_everything_with_http_200(simple_sf):
    result = simple_sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {"method": "POST", "url": "/services/data/v60.0/sobjects/Account", "referenceId": "acct", "body": {"Name": "Rolled Back Inc"}},
                {"method": "POST", "url": "/services/data/v60.0/sobjects/Order", "referenceId": "order", "body": {"AccountId": "@{acct.id}"}},
            ],
        },
    )

    first, second = result["compositeResponse"]
    assert first["httpStatusCode"] == 400 and first["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert second["httpStatusCode"] == 400 and second["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert simple_sf.query("SELECT Id FROM Account WHERE Name = 'Rolled Back Inc'")["totalSize"] == 0


def test_bulk_upsert_collection_reports_created_per_record(simple_sf):
    simple_sf.Product2.create({"Name": "Existing", "ProductCode": "P-1", "External_Id__c": "P-1"})

    result = simple_sf.restful(
        "composite/sobjects/Product2/External_Id__c",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Product2"}, "External_Id__c": "P-1", "Name": "Existing, renamed"},
                {"attributes": {"type": "Product2"}, "External_Id__c": "P-2", "Name": "New"},
                {"attributes": {"type": "Product2"}, "External_Id__c": "P-3"},
            ],
        },
    )

    assert [(r["success"], r.get("created")) for r in result] == [(True, False), (True, True), (False, None)]
    assert result[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"


def test_every_response_reports_api_usage(simple_sf):
    simple_sf.query("SELECT Id FROM Account")
    simple_sf.query("SELECT Id FROM Account")

    usage = simple_sf.api_usage["api-usage"]
    assert usage.used >= 2 and usage.total == 100000


def test_describe_lists_objects_with_key_prefixes(simple_sf):
    described = {o["name"]: o["keyPrefix"] for o in simple_sf.describe()["sobjects"]}

    assert described["Account"] == "001" and described["Opportunity"] == "006" and described["Order"] == "801" and described["Contract"] == "800"
    fields = {f["name"]: f for f in simple_sf.Order.describe()["fields"]}
    assert fields["OrderNumber"]["createable"] is False and fields["ERP_Order_Id__c"]["externalId"] is True
