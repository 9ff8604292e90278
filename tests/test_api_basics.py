"""API plumbing: token auth, problem+json errors, the OpenAPI schema and docs."""

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token


@pytest.mark.django_db
def test_the_kpi_api_refuses_anonymous_callers_with_problem_json(client):
    response = client.get("/api/v1/kpis/")
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["status"] == response.status_code


@pytest.mark.django_db
def test_a_token_issued_by_the_command_authenticates(client, capsys):
    call_command("issue_token", "crm-relay")
    key = capsys.readouterr().out.strip()
    assert Token.objects.get(user__username="crm-relay").key == key
    # an integration user has no KPI permission: authenticated, then refused
    response = client.get("/api/v1/kpis/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 403
    assert "view_kpis" in response.json()["detail"]


@pytest.mark.django_db
def test_kpis_with_a_bad_window_name_the_field(client, executive):
    client.force_login(executive)
    response = client.get("/api/v1/kpis/", {"start": "2026-11-10T00:00:00Z", "end": "2026-11-01T00:00:00Z"})
    assert response.status_code == 400
    body = response.json()
    assert response["Content-Type"].startswith("application/problem+json")
    assert body["errors"][0]["field"] == "end"


@pytest.mark.django_db
def test_kpis_answer_with_every_section(client, executive):
    client.force_login(executive)
    body = client.get("/api/v1/kpis/").json()
    for key in ("order_cycle_time", "amendments", "invoice_sync_lag", "exceptions", "sla", "revenue_at_risk", "retries", "duplicate_rate", "renewal_accuracy"):
        assert key in body
    assert body["revenue_at_risk"]["currency"] == "USD"
    assert set(body["sla"]) == {"order_activation", "amendment", "renewal", "invoice_posting", "payment_status"}


@pytest.mark.django_db
def test_the_openapi_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"openapi: 3" in schema.content and b"/api/v1/kpis/" in schema.content
    docs = client.get("/api/v1/docs/").content.decode()
    assert "cdn" not in docs.lower() and "jsdelivr" not in docs.lower()


@pytest.mark.django_db
def test_every_response_carries_a_request_id(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    assert len(client.get("/healthz")["X-Request-ID"]) == 32
