"""Contract versions at the API (issue 15 item 5): /api/v1/schemas/ lists every version with its
status, a deprecated version is accepted until its sunset and refused from then on with
problem+json naming the current version."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from rest_framework.authtoken.models import Token

from sync.canonical import contracts
from sync.models import InboxEvent

pytestmark = pytest.mark.django_db

V1 = {
    "id": "evt-v1",
    "type": "order.closed_won.v1",
    "source": "crm-relay",
    "occurred_at": "2026-11-23T10:15:00Z",
    "data": {
        "order_number": "ORD-2042",
        "opportunity_id": "006B",
        "account": {"external_id": "001B", "name": "Globex"},
        "currency": "USD",
        "legal_entity": "US01",
        "closed_won_at": "2026-11-23T10:14:00Z",
        "lines": [{"sku": "PLAT-SEAT", "quantity": "25", "unit_price": "40.00", "billing": "recurring", "interval": "month"}],
    },
}
V2 = {
    **V1,
    "id": "evt-v2",
    "type": "order.closed_won.v2",
    "data": {
        **{k: v for k, v in V1["data"].items() if k != "opportunity_id"},
        "deal_id": "006B",
        "lines": [{"sku": "PLAT-SEAT", "quantity": "25", "unit_price": "40.00", "charge_type": "recurring", "interval": "month"}],
        "tax_lines": [{"jurisdiction": "US-CA", "rate": "7.25", "amount": "870.00", "currency": "USD"}],
    },
}
SUNSET = date(2027, 7, 1)


@pytest.fixture
def api(client):
    from django.core.management import call_command

    call_command("issue_token", "crm-relay", stdout=open("/dev/null", "w"))  # the crm scope, granted before v2 existed
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.get(user__username='crm-relay').key}"
    return client


def post(api, path, body):
    return api.post(path, body, content_type="application/json")


def on(monkeypatch, day: date) -> None:
    monkeypatch.setattr(contracts, "today", lambda: day)


def test_the_schemas_listing_gives_every_version_with_its_status_and_keeps_its_old_fields(client):
    listing = client.get("/api/v1/schemas/").json()
    assert listing["envelope"].endswith("/api/v1/schemas/envelope/")
    by_type = {t["type"]: t for t in listing["event_types"]}
    v1, v2 = by_type["order.closed_won.v1"], by_type["order.closed_won.v2"]
    for entry in (v1, v2):  # the fields integrators read before versions had statuses
        assert {"type", "description", "required", "url"} <= set(entry) and "order_number" in entry["required"]
    assert {k: v1[k] for k in ("event", "version", "status", "sunset", "accepted", "current")} == {
        "event": "order.closed_won",
        "version": 1,
        "status": "deprecated",
        "sunset": "2027-07-01",
        "accepted": True,
        "current": "order.closed_won.v2",
    }
    assert {k: v2[k] for k in ("event", "version", "status", "sunset", "accepted", "current")} == {
        "event": "order.closed_won",
        "version": 2,
        "status": "current",
        "sunset": None,
        "accepted": True,
        "current": "order.closed_won.v2",
    }
    assert by_type["invoice.finalized.v1"]["status"] == "current"
    assert client.get(v2["url"]).json()["properties"]["lines"]["items"]["required"] == ["sku", "quantity", "unit_price", "charge_type"]
    deprecated = client.get(v1["url"])
    assert deprecated["Sunset"] == "Thu, 01 Jul 2027 00:00:00 GMT" and 'order.closed_won.v2/>; rel="successor-version"' in deprecated["Link"]
    assert "Sunset" not in client.get(v2["url"])


def test_after_the_sunset_the_listing_says_the_version_is_no_longer_accepted(client, monkeypatch):
    on(monkeypatch, SUNSET)
    by_type = {t["type"]: t for t in client.get("/api/v1/schemas/").json()["event_types"]}
    assert (by_type["order.closed_won.v1"]["status"], by_type["order.closed_won.v1"]["accepted"]) == ("deprecated", False)


def test_v1_and_v2_are_both_accepted_before_the_sunset_and_v1_answers_with_its_sunset(api, monkeypatch):
    on(monkeypatch, date(2027, 6, 30))  # the last day v1 is accepted
    old = post(api, "/api/v1/events/", V1)
    assert old.status_code == 202 and old.json()["status"] == "accepted"
    assert old["Sunset"] == "Thu, 01 Jul 2027 00:00:00 GMT" and "/api/v1/schemas/order.closed_won.v2/" in old["Link"]
    new = post(api, "/api/v1/events/", V2)  # the CRM token's scope grants the event type, every version of it
    assert new.status_code == 202 and "Sunset" not in new
    stored = {e.source_event_id: e for e in InboxEvent.objects.all()}
    assert stored["evt-v1"].envelope["type"] == "order.closed_won.v1"  # kept as received; upcast when processed
    assert stored["evt-v1"].event_type == "order.closed_won.v1" and stored["evt-v2"].event_type == "order.closed_won.v2"


def test_from_the_sunset_on_v1_is_refused_with_problem_json_naming_the_current_version(api, monkeypatch):
    on(monkeypatch, SUNSET)
    refused = post(api, "/api/v1/events/", V1)
    assert refused.status_code == 400 and refused["Content-Type"].startswith("application/problem+json")
    body = refused.json()
    assert body["title"] == "Invalid event" and "order.closed_won.v2" in body["detail"]
    assert body["errors"] == [
        {
            "field": "type",
            "message": "order.closed_won.v1 was retired on 2027-07-01 (its sunset); send order.closed_won.v2 instead (GET /api/v1/schemas/order.closed_won.v2/).",
            "code": "sunset",
            "current": "order.closed_won.v2",
        }
    ]
    assert not InboxEvent.objects.exists()
    assert post(api, "/api/v1/events/", V2).status_code == 202


def test_a_batch_after_the_sunset_rejects_the_v1_items_only(api, monkeypatch):
    on(monkeypatch, SUNSET)
    response = post(api, "/api/v1/events/batch/", {"events": [V1, V2]})
    assert response.status_code == 202 and response.json()["summary"] == {"accepted": 1, "duplicate": 0, "rejected": 1}
    rejected = response.json()["results"][0]
    assert rejected["status"] == "rejected" and rejected["errors"][0]["field"] == "events[0].type" and rejected["errors"][0]["code"] == "sunset"
    assert list(InboxEvent.objects.values_list("source_event_id", flat=True)) == ["evt-v2"]
    all_old = post(api, "/api/v1/events/batch/", {"events": [V1]})
    assert all_old.status_code == 400 and all_old["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "change, field, code",
    [
        (lambda d: d["lines"][0].pop("charge_type"), "data.lines[0].charge_type", "required"),
        (lambda d: d["lines"][0].update(charge_type="milestone"), "data.lines[0].charge_type", "enum"),
        (lambda d: d["tax_lines"][0].pop("jurisdiction"), "data.tax_lines[0].jurisdiction", "required"),
        (lambda d: d["tax_lines"][0].update(rate="7,25"), "data.tax_lines[0].rate", "pattern"),
        (lambda d: d["tax_lines"][0].update(currency="usd"), "data.tax_lines[0].currency", "pattern"),
    ],
)
def test_v2_is_validated_as_v2(api, change, field, code):
    event = copy.deepcopy(V2)
    change(event["data"])
    response = post(api, "/api/v1/events/", event)
    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(field, code)]
