"""Input that cannot crash the server (issue 13 A.2, item 4 of the issue): every input the
issue names answers 4xx (or the default, for an empty sort) — never a 500."""

from __future__ import annotations

import json

import pytest

PAGES = [
    "/exceptions/",
    "/traces/",
    "/orders/",
    "/invoices/",
    "/amendments/",
    "/exceptions/export.csv",
    "/exceptions/groups/",
    "/",
    "/sla/",
    "/reconciliation/",
]
APIS = ["/api/v1/exceptions/", "/api/v1/flows/", "/api/v1/exceptions/groups/", "/api/v1/kpis/"]
FILTERS = ["q", "step", "account", "document_number", "flow_type", "status", "system", "sort", "deal_id", "correlation_id"]


@pytest.fixture
def staff(admin_client):
    return admin_client


@pytest.mark.parametrize("path", PAGES + APIS)
@pytest.mark.parametrize("name", FILTERS)
def test_a_nul_byte_in_any_filter_is_a_400(staff, path, name):
    response = staff.get(path, {name: "abc\x00def"})
    assert response.status_code == 400, response.content[:300]
    if path.startswith("/api/"):
        assert response["Content-Type"].startswith("application/problem+json")
        assert "NUL" in response.json()["detail"]
    else:
        assert b"NUL" in response.content


def test_a_nul_byte_in_a_parameter_name_is_a_400(staff):
    assert staff.get("/api/v1/exceptions/?a%00b=1").status_code == 400


@pytest.mark.parametrize("path", ["/exceptions/", "/exceptions/export.csv", "/api/v1/exceptions/"])
@pytest.mark.parametrize("sort", ["", "-", " ", "last_seen\t"])
def test_an_empty_or_odd_sort_is_the_default_on_pages_and_a_400_on_the_api(staff, path, sort):
    """Pages and the CSV fall back to the default order (the page says so); the API refuses the
    request as it refuses every invalid filter (tests/monitoring/exceptions/test_filters.py)."""
    response = staff.get(path, {"sort": sort})
    if path.startswith("/api/"):
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "sort"
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("path", ["/", "/orders/", "/invoices/", "/api/v1/kpis/"])
@pytest.mark.parametrize("value", ["2026-02-30", "2026-13-01", "9999999-01-01", "2026-02-30T25:00:00"])
def test_an_impossible_date_in_a_window_is_a_clear_message(staff, path, value):
    response = staff.get(path, {"start": value, "end": "2026-03-01"})
    assert response.status_code in (200, 400), response.status_code
    if path.startswith("/api/"):
        assert response.status_code == 400 and response["Content-Type"].startswith("application/problem+json")
    else:
        assert b"not a date" in response.content or b"outside the dates" in response.content or b"not a valid" in response.content


# --- bodies ----------------------------------------------------------------------------------
@pytest.fixture
def relay(client, db):
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("issue_token", "crm-relay", "--scope", "crm", stdout=open("/dev/null", "w"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.get(user__username='crm-relay').key}"
    return client


ORDER = {
    "id": "evt-edge-1",
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


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/batch/", "/api/v1/webhooks/stripe/", "/api/v1/exceptions/bulk-retry/"])
def test_json_nested_ten_thousand_deep_is_a_400_not_a_recursion_error(relay, path):
    body = "[" * 10_000 + "]" * 10_000
    response = relay.post(path, body, content_type="application/json")
    assert response.status_code == 400 and response["Content-Type"].startswith("application/problem+json")
    assert "64" in response.json()["detail"]
    nested = {"events": [{**ORDER, "data": {**ORDER["data"], "deep": json.loads("[" * 60 + "]" * 60)}}]}
    assert relay.post("/api/v1/events/batch/", nested, content_type="application/json").status_code != 500


def test_the_depth_scan_skips_brackets_inside_strings():
    from q2c_portal.edge import json_depth

    assert json_depth(b'{"a": "[[[[{{{{\\"]]]", "b": [1, [2]]}') == 3
    assert json_depth(("[" * 10_000 + "]" * 10_000).encode()) == 10_000


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/batch/", "/api/v1/webhooks/stripe/"])
def test_an_oversized_body_is_a_413_problem(relay, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    response = relay.post(path, json.dumps({"events": [ORDER], "pad": "x" * 60_000}), content_type="application/json")
    assert response.status_code == 413 and response["Content-Type"].startswith("application/problem+json")


def test_an_oversized_form_on_a_page_is_a_413_page(admin_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    response = admin_client.post("/exceptions/bulk-retry/", {"note": "x" * 5_000})
    assert response.status_code == 413 and b"too large" in response.content


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/batch/"])
def test_a_nul_character_in_event_data_is_a_400_and_nothing_is_stored(relay, path):
    from sync.models import InboxEvent

    event = {**ORDER, "data": {**ORDER["data"], "account": {"external_id": "001A", "name": "Glo\u0000bex"}}}
    body = json.dumps(event if path.endswith("events/") else {"events": [event]})
    assert "\\u0000" in body
    response = relay.post(path, body, content_type="application/json")
    assert response.status_code == 400 and "NUL" in response.json()["detail"]
    assert not InboxEvent.objects.exists()
    literal = {**ORDER, "data": {**ORDER["data"], "account": {"external_id": "001A", "name": "Globex \\u0000 Inc"}}}  # the text \u0000, not a NUL
    assert relay.post("/api/v1/events/", literal, content_type="application/json").status_code == 202


def test_a_signed_stripe_event_holding_a_nul_is_kept_dead_lettered_and_replayable(client, db):
    """PostgreSQL cannot store U+0000 in text: the event is stored without it, its exact bytes
    beside it, dead-lettered with the reason, and a replay processes it (one flow)."""
    import base64
    import time
    from pathlib import Path

    from sync.connectors.stripe import mapper
    from sync.engine.inbox import inbox_process, inbox_replay
    from sync.models import FlowRun, InboxEvent, SyncException

    resources = json.loads((Path(__file__).resolve().parent / "fixtures" / "stripe" / "fixtures3.json").read_text())["resources"]
    invoice = {**resources["invoice"], "number": "INV-NUL-1", "status": "open", "customer_name": "Glo\u0000bex", "description": "a\u0000b"}
    invoice["status_transitions"] = {**invoice["status_transitions"], "finalized_at": int(time.time())}
    event = {**resources["event"], "id": "evt_nul_1", "type": "invoice.finalized", "data": {"object": invoice}}
    body = json.dumps(event).encode()
    assert b"\\u0000" in body
    signed = {"HTTP_STRIPE_SIGNATURE": mapper.signature_header(body, "whsec_sandbox_secret")}

    response = client.post("/api/v1/webhooks/stripe/", body, content_type="application/json", **signed)
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1
    stored = InboxEvent.objects.get(source="stripe", source_event_id="evt_nul_1")
    assert stored.status == InboxEvent.Status.DEAD and "NUL" in stored.error and "data.object.customer_name" in stored.error
    assert base64.b64decode(stored.envelope["raw_body_b64"]) == body  # the bytes Stripe signed, exactly
    assert stored.envelope["payload"]["data"]["object"]["customer_name"] == "Globex"
    exc = SyncException.objects.get(inbox_event=stored)
    assert exc.error_class == "validation" and "NUL" in exc.message
    again = client.post("/api/v1/webhooks/stripe/", body, content_type="application/json", **signed)
    assert again.json() == {"received": 1, "accepted": 0, "duplicates": 1}  # a Stripe retry is the same event

    inbox_replay(inbox_id=stored.pk)
    assert inbox_process(stored.pk) == InboxEvent.Status.PROCESSED
    run = FlowRun.objects.get(flow_type="invoice_posting", document_number="INV-NUL-1")
    assert run.account_name == "Globex"
