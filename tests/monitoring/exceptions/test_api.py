"""The exception queue API: same filters and permissions as the pages, problem+json errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sync.models import AuditEntry, SyncException
from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory

pytestmark = pytest.mark.django_db


def exc(**kw):
    flow_type = kw.pop("flow_type", "order_activation")
    run = FlowRunFactory(status="failed", flow_type=flow_type)
    return SyncExceptionFactory(step=FlowStepFactory(flow_run=run), **kw)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    return response.json()


@pytest.fixture
def api(client, itops):
    client.force_login(itops)
    return client


def test_list_filters_combine_like_the_page(api):
    a = exc(error_class="mapping", system="netsuite", document_number="INV-1", amount=Decimal("500"))
    b = exc(error_class="mapping", system="stripe", document_number="INV-2", amount=Decimal("5000"))
    c = exc(error_class="auth", system="stripe", document_number="ORD-3", message="Invalid API key provided")
    assert set(ids(api.get("/api/v1/exceptions/?error_class=mapping"))) == {a.pk, b.pk}
    assert ids(api.get("/api/v1/exceptions/?error_class=mapping&system=stripe")) == [b.pk]
    assert ids(api.get("/api/v1/exceptions/?q=invalid api")) == [c.pk]
    assert ids(api.get("/api/v1/exceptions/?sort=-amount&error_class=mapping")) == [b.pk, a.pk]
    assert ids(api.get("/api/v1/exceptions/?amount_min=1000&amount_max=6000&currency=usd")) == [b.pk]


def test_list_rows_carry_the_business_columns(api, settings):
    settings.REPORTING_CURRENCY = "USD"
    e = exc(document_number="INV-77", account_name="Hooli Inc.", amount=Decimal("1200.50"), currency="EUR", revenue_at_risk=Decimal("1300"))
    row = api.get("/api/v1/exceptions/").json()["results"][0]
    assert row["id"] == e.pk and row["document"] == "INV-77" and row["account"] == "Hooli Inc."
    assert (row["amount"], row["currency"], row["revenue_at_risk"], row["reporting_currency"]) == ("1200.50", "EUR", "1300.00", "USD")
    assert row["status"] == "open" and row["occurrences"] == 1 and row["url"].endswith(f"/api/v1/exceptions/{e.pk}/")


def test_an_unknown_filter_or_value_is_a_problem_with_field_detail(api):
    body = problem(api.get("/api/v1/exceptions/?error_class=bogus&colour=red"), 400)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"error_class", "colour"}
    assert problem(api.get("/api/v1/exceptions/?amount_min=lots"), 400)["errors"][0]["field"] == "amount_min"


def test_detail_has_the_story_with_secrets_redacted(api):
    e = exc(payload={"headers": {"Authorization": "Bearer abc"}, "body": {"sku": "SKU-42"}}, response={"status_code": 400, "body": {"token": "t"}})
    body = api.get(f"/api/v1/exceptions/{e.pk}/").json()
    assert body["payload"] == {"headers": {"Authorization": "•••"}, "body": {"sku": "SKU-42"}}
    assert body["response"]["body"]["token"] == "•••"
    assert body["story"]["retry"]["idempotency_key"] == e.step.idempotency_key
    assert [s["this_exception"] for s in body["story"]["steps"]] == [True]
    assert body["story"]["suggestion"].startswith("Fix the field")
    api.post(f"/api/v1/exceptions/{e.pk}/comment/", {"text": "on it"}, content_type="application/json")
    history = api.get(f"/api/v1/exceptions/{e.pk}/").json()["story"]["history"]
    assert [(h["action"], h["actor"], h["note"]) for h in history] == [("comment", "oscar", "on it")]
    assert problem(api.get("/api/v1/exceptions/999999/"), 404)


def test_actions_change_the_exception_and_are_audited_with_the_user(api, itops, revops):
    e = exc()
    assert api.post(f"/api/v1/exceptions/{e.pk}/assign/", {"assignee": "rick"}, content_type="application/json").json()["assignee"] == "rick"
    api.post(f"/api/v1/exceptions/{e.pk}/comment/", {"text": "looking"}, content_type="application/json")
    retried = api.post(f"/api/v1/exceptions/{e.pk}/retry/")
    assert retried.status_code == 200 and retried.json()["status"] == "retrying"
    resolved = api.post(f"/api/v1/exceptions/{e.pk}/resolve/", {"note": "fixed in NetSuite"}, content_type="application/json").json()
    assert resolved["status"] == "resolved" and resolved["resolution_note"] == "fixed in NetSuite"
    actions = list(AuditEntry.objects.filter(object_type="exception", object_id=str(e.pk), actor=itops).values_list("action", flat=True))
    assert actions == ["assign", "comment", "retry", "resolve"]
    other = exc()
    assert api.post(f"/api/v1/exceptions/{other.pk}/ignore/", {"reason": "test data"}, content_type="application/json").json()["status"] == "ignored"


def test_bad_action_input_is_a_problem_with_field_detail(api):
    e = exc()
    body = problem(api.post(f"/api/v1/exceptions/{e.pk}/resolve/", {}, content_type="application/json"), 400)
    assert body["errors"][0]["field"] == "note"
    body = problem(api.post(f"/api/v1/exceptions/{e.pk}/assign/", {"assignee": "nobody"}, content_type="application/json"), 400)
    assert body["errors"][0]["field"] == "assignee" and "nobody" in body["errors"][0]["message"]
    SyncException.objects.filter(pk=e.pk).update(status="resolved")
    body = problem(api.post(f"/api/v1/exceptions/{e.pk}/retry/"), 400)
    assert body["errors"][0]["field"] == "status"


def test_an_executive_may_read_but_every_action_is_403(client, executive):
    e = exc()
    client.force_login(executive)
    assert client.get("/api/v1/exceptions/").status_code == 200
    assert client.get(f"/api/v1/exceptions/{e.pk}/").status_code == 200
    for action in ("retry", "resolve", "ignore", "assign", "comment", "replay", "cancel", "edit-payload"):
        problem(
            client.post(f"/api/v1/exceptions/{e.pk}/{action}/", {"note": "x", "reason": "x", "assignee": "", "text": "x"}, content_type="application/json"), 403
        )
    problem(client.post("/api/v1/exceptions/bulk-retry/?dry_run=true"), 403)
    e.refresh_from_db()
    assert (e.status, e.assignee_id, e.retries) == ("open", None, 0)


def test_anonymous_is_refused(client):
    assert client.get("/api/v1/exceptions/").status_code in (401, 403)


def test_bulk_retry_dry_run_counts_exactly_what_the_list_filter_matches(api):
    for i in range(7):
        exc(system="netsuite", error_class="not_found", document_number=f"ORD-{i}")
    exc(system="netsuite", error_class="auth")
    exc(system="stripe", error_class="not_found")
    listed = api.get("/api/v1/exceptions/?system=netsuite&error_class=not_found").json()["count"]
    dry = api.post("/api/v1/exceptions/bulk-retry/?system=netsuite&error_class=not_found&dry_run=true")
    assert dry.status_code == 200
    body = dry.json()
    assert body["dry_run"] is True and body["matched"] == listed == 7 and body["retryable"] == 7
    keys = set(SyncException.objects.filter(system="netsuite", error_class="not_found").values_list("step__idempotency_key", flat=True))
    assert set(body["idempotency_keys"]) == keys
    assert not SyncException.objects.filter(status="retrying").exists()  # a dry run changes nothing
    in_body = api.post("/api/v1/exceptions/bulk-retry/", {"system": "stripe", "dry_run": True}, content_type="application/json").json()
    assert in_body["matched"] == 1


def test_bulk_retry_starts_a_job_and_answers_202_with_a_url_to_poll(api, itops):
    from monitoring.models import BulkJob

    for _ in range(3):
        exc(system="stripe")
    exc(system="netsuite")
    stale = problem(api.post("/api/v1/exceptions/bulk-retry/?system=stripe", {"expected_total": 5}, content_type="application/json"), 400)
    assert stale["errors"][0]["field"] == "expected_total" and not BulkJob.objects.exists()
    response = api.post("/api/v1/exceptions/bulk-retry/?system=stripe", {"expected_total": 3}, content_type="application/json")
    assert response.status_code == 202
    body = response.json()
    job = BulkJob.objects.get(pk=body["job_id"])
    assert job.total == 3 and job.items.count() == 3 and job.created_by == itops
    assert response["Location"] == body["status_url"]
    polled = api.get(body["status_url"]).json()
    assert polled["id"] == job.pk and polled["total"] == 3 and polled["percent"] == 0 and polled["filter"] == "system=stripe"
    problem(api.post("/api/v1/exceptions/bulk-retry/?system=salesforce"), 400)  # nothing matches: nothing starts


def test_financial_payload_edit_through_the_api_waits_for_approval(api):
    run = FlowRunFactory(status="failed", flow_type="payment_status", context={"event": {"data": {"amount": "10.00"}}})
    e = SyncExceptionFactory(step=FlowStepFactory(flow_run=run, name="erp_payment"), error_class="validation")
    body = api.post(f"/api/v1/exceptions/{e.pk}/edit-payload/", {"payload": {"amount": "10.50"}, "reason": "rounding"}, content_type="application/json").json()
    assert body["payload_edit"]["status"] == "pending" and body["payload_edit"]["requires_approval"] is True
    run.refresh_from_db()
    assert "payload_overrides" not in run.context


def test_groups_endpoint_sums_revenue_at_risk_per_cause(api):
    for i in range(2):
        exc(cause_key="c1", document_number=f"D{i}", revenue_at_risk=Decimal("10.5"))
    body = api.get("/api/v1/exceptions/groups/").json()
    group = body["results"][0]
    assert (group["cause_key"], group["exceptions"], group["documents"], group["revenue_at_risk"]) == ("c1", 2, 2, "21.00")


def test_the_openapi_schema_describes_the_exception_endpoints(api):
    schema = api.get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/exceptions/" in paths and "/api/v1/exceptions/bulk-retry/" in paths
    params = {p["name"] for p in paths["/api/v1/exceptions/"]["get"]["parameters"]}
    assert {"error_class", "system", "q", "sort", "cause", "page"} <= params
