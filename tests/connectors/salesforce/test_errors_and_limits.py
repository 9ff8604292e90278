"""How the connector classifies Salesforce failures and waits out Retry-After."""

from __future__ import annotations

import time

import pytest

from sync.connectors.errors import ConnectorError
from sync.models import ConnectorCall

pytestmark = pytest.mark.django_db(transaction=True)


def _order(connector):
    from sandboxes.salesforce.simulate import close_won_deal

    return close_won_deal(account_name="Umbrella Health", lines=[{"sku": "PLAT-PRO", "quantity": 10, "unit_price": "79.00"}])


def test_429_with_retry_after_is_waited_out_and_the_call_succeeds(connector, sf_server):
    connector.health()
    sf_server.faults(rate_limit_retry_after=2, rate_limit_requests=1)

    started = time.monotonic()
    rows = list(connector.query("SELECT Id FROM Account"))

    assert rows == [] and time.monotonic() - started >= 2
    assert list(ConnectorCall.objects.filter(system="salesforce", operation="GET query").values_list("status_code", "error_class")) == [
        (429, "rate_limit"),
        (200, ""),
    ]


def test_503_with_retry_after_is_waited_out_and_the_call_succeeds(connector, org):
    connector.health()
    org(unavailable_requests=1, unavailable_retry_after=2)

    started = time.monotonic()
    rows = list(connector.query("SELECT Id FROM Account"))

    assert rows == [] and time.monotonic() - started >= 2


def test_a_retry_after_beyond_the_bound_is_left_to_the_engine_as_a_transient_error(connector, sf_server, settings):
    connector.session.max_wait = 1
    connector.health()
    sf_server.faults(rate_limit_retry_after=5, rate_limit_requests=1)

    with pytest.raises(ConnectorError) as caught:
        list(connector.query("SELECT Id FROM Account"))

    assert caught.value.error_class == "rate_limit" and caught.value.transient


def test_400_becomes_a_validation_error_with_the_message_and_field(connector):
    deal = _order(connector)

    with pytest.raises(ConnectorError) as caught:
        connector.set_status(object_type="Order", external_id=deal["order_id"], fields={"Status": "Shipped"}, idempotency_key="k1")

    error = caught.value
    assert error.error_class == "validation" and not error.transient
    assert error.field == "Status" and error.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error.message == "Status: bad value for restricted picklist field: Shipped"


def test_fail_records_fail_the_write_with_a_custom_validation_naming_the_field(connector, sf_server):
    deal = _order(connector)
    sf_server.faults(fail_records=["Umbrella Health"])

    with pytest.raises(ConnectorError) as caught:
        connector.set_status(object_type="Order", external_id=deal["order_id"], fields={"Q2C_Status__c": "Activated"}, idempotency_key="k2")

    assert caught.value.error_class == "validation" and caught.value.code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert caught.value.field == "Q2C_Status__c" and "Umbrella Health" in caught.value.message


def test_org_request_limit_is_a_rate_limit_error(connector, org):
    connector.health()
    org(api_requests_limit=1)

    with pytest.raises(ConnectorError) as caught:
        list(connector.query("SELECT Id FROM Account"))

    assert caught.value.error_class == "rate_limit" and caught.value.code == "REQUEST_LIMIT_EXCEEDED" and caught.value.status_code == 403


def test_unknown_record_is_not_found_and_an_outage_is_unavailable(connector, sf_server):
    with pytest.raises(ConnectorError) as missing:
        connector.set_status(object_type="Order", external_id="8015g0000009999AAA", fields={"Q2C_Status__c": "Activated"}, idempotency_key="k3")
    sf_server.faults(outage=True)
    with pytest.raises(ConnectorError) as down:
        list(connector.query("SELECT Id FROM Account"))

    assert missing.value.error_class == "not_found"
    assert down.value.error_class == "unavailable" and down.value.transient


def test_an_unreachable_instance_is_unavailable(connector):
    connector.token_url = "http://127.0.0.1:9/services/oauth2/token"

    with pytest.raises(ConnectorError) as caught:
        connector.health()

    assert caught.value.error_class == "unavailable"


def test_set_status_twice_leaves_the_same_record_and_activation_needs_products(connector):
    deal = _order(connector)
    fields = {"Status": "Activated", "Q2C_Status__c": "Activated", "ERP_Order_Id__c": "SO-1001", "Billing_Subscription_Id__c": "sub_123"}

    first = connector.set_status(object_type="Order", external_id=deal["order_id"], fields=fields, idempotency_key="same")
    second = connector.set_status(object_type="Order", external_id=deal["order_id"], fields=fields, idempotency_key="same")
    row = next(connector.query(f"SELECT Status, Q2C_Status__c, ERP_Order_Id__c FROM Order WHERE Id = '{deal['order_id']}'"))

    assert first.external_id == second.external_id == deal["order_id"]
    assert (row["Status"], row["Q2C_Status__c"], row["ERP_Order_Id__c"]) == ("Activated", "Activated", "SO-1001")
    empty = connector.call(lambda sf: sf.Order.create({"AccountId": deal["account_id"], "EffectiveDate": "2026-11-01"}))
    with pytest.raises(ConnectorError) as caught:
        connector.set_status(object_type="Order", external_id=empty["id"], fields={"Status": "Activated"}, idempotency_key="k4")
    assert caught.value.error_class == "validation" and caught.value.field == "Status"


def test_set_status_by_external_id_upserts(connector):
    created = connector.set_status(object_type="Account", external_id="External_Id__c/HUB-77", fields={"Name": "Hooli"}, idempotency_key="a")
    updated = connector.set_status(object_type="Account", external_id="External_Id__c/HUB-77", fields={"Name": "Hooli XYZ"}, idempotency_key="a")

    assert created.created is True and created.status_code == 201
    assert updated.created is False and updated.status_code == 200 and updated.external_id == created.external_id
