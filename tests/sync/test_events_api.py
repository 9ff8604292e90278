"""POST /api/v1/events/ and /events/batch/: stored before the 202, once per id, or a clear problem."""

import copy

import pytest
from rest_framework.authtoken.models import Token

from sync.models import InboxEvent

ORDER = {
    "id": "evt-1",
    "type": "order.closed_won.v1",
    "source": "crm-relay",
    "occurred_at": "2026-11-23T10:15:00Z",
    "data": {
        "order_number": "ORD-1042",
        "account": {"external_id": "001A", "name": "Globex"},
        "currency": "USD",
        "legal_entity": "US01",
        "closed_won_at": "2026-11-23T10:14:00Z",
        "lines": [{"sku": "PLAT-SEAT", "quantity": "25", "unit_price": "40.00", "billing": "recurring", "interval": "month"}],
    },
}


@pytest.fixture
def api(client, db):
    from django.core.management import call_command

    call_command("issue_token", "crm-relay", stdout=open("/dev/null", "w"))
    token = Token.objects.get(user__username="crm-relay").key
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token}"
    return client


def post(api, path, body):
    return api.post(path, body, content_type="application/json")


def test_an_event_is_stored_before_the_202_and_reports_accepted(api):
    response = post(api, "/api/v1/events/", ORDER)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted" and body["id"] == "evt-1"
    stored = InboxEvent.objects.get(pk=body["inbox_id"])
    assert stored.envelope["data"]["order_number"] == "ORD-1042"
    assert str(stored.correlation_id) == body["correlation_id"]


def test_the_same_id_from_the_same_source_is_accepted_once_ever(api):
    assert post(api, "/api/v1/events/", ORDER).json()["status"] == "accepted"
    again = post(api, "/api/v1/events/", ORDER)
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    other_source = {**ORDER, "source": "salesforce-relay"}  # another source the CRM token may claim
    assert post(api, "/api/v1/events/", other_source).json()["status"] == "accepted"
    assert InboxEvent.objects.count() == 2


def test_a_given_correlation_id_groups_the_callers_own_events_in_its_namespace(api):
    """The same source and correlation id give one trace; the value itself is namespaced by the
    source (uuid5), so it can never be another flow's trace id (test_correlation_ids.py)."""
    given = "6f1c1c5e-1f0a-4a53-9d55-3b7f2f0f6a11"
    first = post(api, "/api/v1/events/", {**ORDER, "correlation_id": given}).json()
    second = post(api, "/api/v1/events/", {**ORDER, "id": "evt-2", "correlation_id": given}).json()
    assert first["correlation_id"] == second["correlation_id"] != given
    other = post(api, "/api/v1/events/", {**ORDER, "id": "evt-3", "source": "salesforce-relay", "correlation_id": given}).json()
    assert other["correlation_id"] not in (given, first["correlation_id"])


def test_an_invalid_event_gets_problem_json_naming_each_field_and_nothing_is_stored(api):
    bad = copy.deepcopy(ORDER)
    bad["occurred_at"] = "yesterday"
    bad["data"]["currency"] = "usd"
    bad["data"]["lines"][0]["unit_price"] = "forty"
    del bad["data"]["account"]["name"]
    response = post(api, "/api/v1/events/", bad)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    fields = {e["field"]: e["code"] for e in response.json()["errors"]}
    assert fields == {"occurred_at": "format", "data.currency": "pattern", "data.lines[0].unit_price": "pattern", "data.account.name": "required"}
    assert InboxEvent.objects.count() == 0


def test_an_unknown_event_type_is_refused_with_the_known_ones_listed(api):
    response = post(api, "/api/v1/events/", {**ORDER, "type": "order.teleported.v1"})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "type" and "order.closed_won.v1" in error["message"]


def test_malformed_json_is_a_readable_400(api):
    response = api.post("/api/v1/events/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_a_user_without_the_ingest_permission_is_refused(client, executive):
    client.force_login(executive)
    assert post(client, "/api/v1/events/", ORDER).status_code == 403
    assert InboxEvent.objects.count() == 0


def test_a_batch_reports_per_item_and_stores_nothing_of_a_rejected_item(api):
    good = [{**ORDER, "id": f"evt-{i}"} for i in range(3)]
    bad = {**ORDER, "id": "evt-bad", "data": {**ORDER["data"], "currency": "dollars"}}
    response = post(api, "/api/v1/events/batch/", {"events": [good[0], bad, good[1], good[0], good[2]]})
    assert response.status_code == 202
    body = response.json()
    assert body["summary"] == {"accepted": 3, "duplicate": 1, "rejected": 1}
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "accepted", "duplicate", "accepted"]
    assert body["results"][1]["errors"][0]["field"] == "events[1].data.currency"
    assert not InboxEvent.objects.filter(source_event_id="evt-bad").exists()
    assert InboxEvent.objects.count() == 3


def test_a_batch_over_1000_is_refused_whole(api):
    response = post(api, "/api/v1/events/batch/", {"events": [{**ORDER, "id": f"e{i}"} for i in range(1001)]})
    assert response.status_code == 400
    assert InboxEvent.objects.count() == 0


def test_a_batch_of_1000_is_stored_in_one_call(api):
    response = post(api, "/api/v1/events/batch/", {"events": [{**ORDER, "id": f"e{i}"} for i in range(1000)]})
    assert response.status_code == 202
    assert response.json()["summary"]["accepted"] == 1000
    assert InboxEvent.objects.count() == 1000


def test_the_event_contracts_are_served_for_integrators(client, db):
    listing = client.get("/api/v1/schemas/").json()
    types = {t["type"] for t in listing["event_types"]}
    assert {"order.closed_won.v1", "invoice.finalized.v1", "customer.upserted.v1", "usage.closed.v1"} <= types
    order_schema = client.get("/api/v1/schemas/order.closed_won.v1/").json()
    assert "order_number" in order_schema["required"]
    assert client.get("/api/v1/schemas/nope.v1/").status_code == 404


def test_a_revoked_permission_is_refused_once_the_30_second_grant_cache_expires(api, monkeypatch):
    import time

    from django.contrib.auth.models import User

    from q2c_portal import api as portal_api

    monkeypatch.setattr(portal_api, "PERM_CACHE_SECONDS", 0.2)
    assert post(api, "/api/v1/events/", {**ORDER, "id": "evt-grant-1"}).status_code == 202
    user = User.objects.get(username="crm-relay")
    user.groups.clear()
    user.user_permissions.clear()
    assert post(api, "/api/v1/events/", {**ORDER, "id": "evt-grant-2"}).status_code == 202  # within the grant cache
    time.sleep(0.3)
    refused = post(api, "/api/v1/events/", {**ORDER, "id": "evt-grant-3"})
    assert refused.status_code == 403 and not InboxEvent.objects.filter(source_event_id="evt-grant-3").exists()
    user.is_active = False
    user.save()
    assert post(api, "/api/v1/events/", {**ORDER, "id": "evt-grant-4"}).status_code in (401, 403)  # at once
