"""The per-connector circuit breaker, and the trace API over a flow's whole story."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sync.audit import audit_record
from sync.engine import circuit
from sync.models import ConnectorState
from tests.factories import FlowRunFactory, FlowStepFactory

pytestmark = pytest.mark.django_db


def test_repeated_unavailable_errors_open_the_circuit_and_a_later_success_closes_it(monkeypatch):
    monkeypatch.setattr(circuit, "THRESHOLD", 3)
    for _ in range(2):
        circuit.circuit_record_failure("netsuite", "unavailable", "503 Service Unavailable")
    assert circuit.circuit_wait_seconds("netsuite") == 0  # not yet: two in a row
    circuit.circuit_record_failure("netsuite", "unavailable", "503 Service Unavailable")
    assert ConnectorState.objects.get(system="netsuite").circuit == "open"
    assert circuit.circuit_wait_seconds("netsuite") > 0  # steps wait instead of spending retries

    ConnectorState.objects.filter(system="netsuite").update(opened_at=timezone.now() - timedelta(seconds=circuit.COOLDOWN_SECONDS + 1))
    assert circuit.circuit_wait_seconds("netsuite") == 0  # cooldown over: probes go through
    assert ConnectorState.objects.get(system="netsuite").circuit == "half_open"
    circuit.circuit_record_success("netsuite")
    state = ConnectorState.objects.get(system="netsuite")
    assert (state.circuit, state.consecutive_failures) == ("closed", 0) and state.last_success_at is not None


def test_validation_errors_do_not_open_the_circuit(monkeypatch):
    monkeypatch.setattr(circuit, "THRESHOLD", 2)
    for _ in range(5):
        circuit.circuit_record_failure("stripe", "validation", "No such price")
    assert ConnectorState.objects.get(system="stripe").circuit == "closed"


def test_the_trace_api_returns_the_flow_its_steps_and_its_audit_trail(client, itops, executive):
    run = FlowRunFactory(document_number="ORD-77")
    FlowStepFactory(flow_run=run, seq=1, name="validate", system="hub", status="succeeded")
    FlowStepFactory(flow_run=run, seq=2, name="erp_sales_order", system="netsuite", status="failed", error_class="mapping", error_message="No item SKU-42")
    audit_record(object_type="flow", object_id=run.pk, action="start", correlation_id=run.correlation_id)
    FlowRunFactory(document_number="INV-77", flow_type="invoice_posting", correlation_id=run.correlation_id)

    client.force_login(itops)
    listing = client.get("/api/v1/flows/", {"correlation_id": str(run.correlation_id)}).json()
    assert {r["document_number"] for r in listing["results"]} == {"ORD-77", "INV-77"}
    detail = client.get(f"/api/v1/flows/{run.pk}/").json()
    assert [s["name"] for s in detail["steps"]] == ["validate", "erp_sales_order"]
    assert detail["steps"][1]["error_message"] == "No item SKU-42"
    assert detail["audit"][0]["action"] == "start"
    assert detail["related"][0]["document_number"] == "INV-77"
    assert client.get("/api/v1/flows/", {"correlation_id": "not-a-uuid"}).status_code == 400

    client.force_login(executive)  # executives see KPIs, not payload-level traces
    assert client.get(f"/api/v1/flows/{run.pk}/").status_code == 403
