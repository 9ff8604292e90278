"""A caller-supplied correlation_id cannot attach events to another flow's trace (issue 13 A.3)."""

from __future__ import annotations

import os
import uuid

from django.core.management import call_command
from rest_framework.authtoken.models import Token

from sync.engine.inbox import caller_correlation_id, inbox_process
from sync.models import AuditEntry, FlowRun, InboxEvent
from tests.factories import FlowRunFactory

ORDER = {
    "id": "evt-corr-1",
    "type": "order.closed_won.v1",
    "source": "crm-relay",
    "occurred_at": "2026-11-23T10:15:00Z",
    "data": {
        "order_number": "ORD-CORR-1",
        "account": {"external_id": "001C", "name": "Initech"},
        "currency": "USD",
        "legal_entity": "US01",
        "closed_won_at": "2026-11-23T10:14:00Z",
        "lines": [{"sku": "PLAT-SEAT", "quantity": "5", "unit_price": "40.00", "billing": "recurring", "interval": "month"}],
    },
}


def test_another_flows_correlation_id_sent_by_a_caller_starts_a_trace_of_its_own(client, db, admin_client):
    victim = FlowRunFactory(flow_type="invoice_posting", document_number="INV-VICTIM")
    call_command("issue_token", "crm-relay", "--scope", "crm", stdout=open(os.devnull, "w"))
    token = Token.objects.get(user__username="crm-relay").key
    response = client.post(
        "/api/v1/events/", {**ORDER, "correlation_id": str(victim.correlation_id)}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )
    assert response.status_code == 202
    given = response.json()["correlation_id"]
    assert given != str(victim.correlation_id) and given == caller_correlation_id("crm-relay", str(victim.correlation_id))
    inbox = InboxEvent.objects.get(source_event_id="evt-corr-1")
    assert str(inbox.correlation_id) == given and inbox.envelope["correlation_id"] == given

    inbox_process(inbox.pk)
    run = FlowRun.objects.get(document_number="ORD-CORR-1")
    assert str(run.correlation_id) == given
    assert not AuditEntry.objects.filter(correlation_id=victim.correlation_id).exclude(object_id=str(victim.pk)).exists()
    trace = admin_client.get(f"/api/v1/flows/{victim.pk}/").json()
    assert trace["related"] == []  # the victim's trace shows nothing of the caller's event
    listed = admin_client.get("/api/v1/flows/", {"correlation_id": str(victim.correlation_id)}).json()
    assert [f["id"] for f in listed["results"]] == [victim.pk]


def test_the_namespace_is_per_source_and_stable():
    value = str(uuid.uuid4())
    assert caller_correlation_id("crm-relay", value) == caller_correlation_id("crm-relay", value.upper())
    assert caller_correlation_id("crm-relay", value) != caller_correlation_id("metering", value)
    assert caller_correlation_id("crm-relay", "") is None
