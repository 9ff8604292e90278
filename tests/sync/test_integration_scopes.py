"""Scoped integration credentials (issue 13 A.1): a token speaks only for its own system.

The matrix is written out here, not derived from sync/scopes.py, so a preset that grows a
source or an event type it should not have fails a test."""

from __future__ import annotations

import copy
import importlib
import json
import os
import time
from pathlib import Path

import pytest
from django.apps import apps as global_apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from sync.connectors.stripe import mapper
from sync.engine.inbox import inbox_process
from sync.models import AuditEntry, FlowRun, InboxEvent, IntegrationScope

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "fixtures3.json"
STRIPE_SECRET = "whsec_sandbox_secret"
NOW = "2026-11-23T10:15:00Z"
DATA = {
    "order.closed_won.v1": {
        "order_number": "ORD-1042",
        "account": {"external_id": "001A", "name": "Globex"},
        "currency": "USD",
        "legal_entity": "US01",
        "closed_won_at": NOW,
        "lines": [{"sku": "PLAT-SEAT", "quantity": "25", "unit_price": "40.00", "billing": "recurring", "interval": "month"}],
    },
    "subscription.cancelled.v1": {"order_number": "ORD-1042", "requested_at": NOW},
    "invoice.finalized.v1": {"invoice_number": "INV-1", "currency": "EUR", "total": "150.00", "finalized_at": NOW},
    "payment.received.v1": {"payment_id": "pay-1", "invoice_number": "INV-1", "amount": "1.00", "currency": "EUR", "received_at": NOW},
    "invoice.posted.v1": {"invoice_number": "INV-1", "posted_at": NOW},
    "usage.closed.v1": {"order_number": "ORD-1042", "metric": "api_calls", "quantity": "10", "period_start": NOW, "period_end": NOW},
}
SOURCES = ["crm-relay", "salesforce-relay", "billing-relay", "payments-relay", "erp-relay", "metering", "stripe", "salesforce", "netsuite", "hub", "somebody"]
ALLOWED = {  # scope → (sources among SOURCES, event types among DATA) that answer 202; every other pair answers 403
    "crm": ({"crm-relay", "salesforce-relay"}, {"order.closed_won.v1", "subscription.cancelled.v1"}),
    "billing": ({"billing-relay"}, {"invoice.finalized.v1", "subscription.cancelled.v1"}),
    "payments": ({"payments-relay"}, {"payment.received.v1"}),
    "erp": ({"erp-relay"}, {"invoice.posted.v1"}),
    "usage": ({"metering"}, {"usage.closed.v1"}),
}


def event(source: str, event_type: str, event_id: str) -> dict:
    return {"id": event_id, "type": event_type, "source": source, "occurred_at": NOW, "data": copy.deepcopy(DATA[event_type])}


def token_for(username: str, *args: str) -> str:
    call_command("issue_token", username, *args, stdout=open(os.devnull, "w"))
    return Token.objects.get(user__username=username).key


@pytest.mark.parametrize("scope", sorted(ALLOWED))
def test_the_scope_source_event_type_matrix_answers_exactly(client, db, scope):
    key = token_for(f"relay-{scope}", "--scope", scope)
    sources, types = ALLOWED[scope]
    seen = {}
    for source in SOURCES:
        for event_type in DATA:
            body = event(source, event_type, f"{scope}-{source}-{event_type}")
            response = client.post("/api/v1/events/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}")
            seen[(source, event_type)] = response.status_code
            if response.status_code == 403:
                assert response["Content-Type"].startswith("application/problem+json")
                assert response.json()["status"] == 403 and response.json()["errors"][0]["code"]
    expected = {(s, t): 202 if s in sources and t in types else 403 for s in SOURCES for t in DATA}
    assert seen == expected
    accepted = sum(1 for status in expected.values() if status == 202)
    assert InboxEvent.objects.count() == accepted  # nothing of a refused event is stored
    refusals = AuditEntry.objects.filter(action="scope_refused", object_id=f"relay-{scope}")
    assert refusals.count() == len(expected) - accepted  # every refusal is on the audit trail
    assert refusals.first().actor_label == f"relay-{scope}"


def test_a_token_without_a_scope_sends_nothing(client, db):
    user = get_user_model().objects.create(username="someone")
    call_command("issue_token", "someone", "--scope", "crm", stdout=open(os.devnull, "w"))
    IntegrationScope.objects.filter(user=user).delete()
    key = Token.objects.get(user=user).key
    response = client.post(
        "/api/v1/events/", event("crm-relay", "order.closed_won.v1", "e1"), content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}"
    )
    assert response.status_code == 403 and response.json()["errors"][0]["code"] == "no_scope"
    assert not InboxEvent.objects.exists()


def test_a_batch_with_one_event_outside_the_scope_is_refused_whole_and_audited(client, db):
    key = token_for("crm-relay", "--scope", "crm")
    batch = {"events": [event("crm-relay", "order.closed_won.v1", "ok-1"), event("crm-relay", "payment.received.v1", "pay-1")]}
    response = client.post("/api/v1/events/batch/", batch, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 403 and response["Content-Type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == ["events[1].type"]
    assert not InboxEvent.objects.exists()
    audit = AuditEntry.objects.get(action="scope_refused")
    assert audit.after["path"] == "/api/v1/events/batch/" and audit.after["count"] == 2
    ok = client.post("/api/v1/events/batch/", {"events": batch["events"][:1]}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}")
    assert ok.status_code == 202 and ok.json()["summary"]["accepted"] == 1


def test_a_crm_token_cannot_claim_a_stripe_event_id_and_the_real_signed_event_makes_one_flow(client, db):
    """The spoofing sequence of the issue: fake Stripe event id from a CRM token, then Stripe's own."""
    resources = json.loads(FIXTURES.read_text())["resources"]
    invoice = {**resources["invoice"], "number": "INV-SPOOF-1", "status": "open"}
    invoice["status_transitions"] = {**invoice["status_transitions"], "finalized_at": int(time.time())}
    stripe_event = {**copy.deepcopy(resources["event"]), "id": "evt_real_stripe_1", "type": "invoice.finalized", "data": {"object": invoice}}
    key = token_for("crm-relay", "--scope", "crm")

    for event_type in ("invoice.finalized.v1", "order.closed_won.v1"):
        forged = event("stripe", event_type, stripe_event["id"])
        response = client.post("/api/v1/events/", forged, content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}")
        assert response.status_code == 403, response.content
        assert response.json()["errors"][0]["code"] == "reserved_source"
    assert not InboxEvent.objects.exists()
    assert AuditEntry.objects.filter(action="scope_refused", object_id="crm-relay").count() == 2

    body = json.dumps(stripe_event).encode()
    for _ in range(2):  # Stripe retries: the second delivery is the duplicate, not the first
        signed = {"HTTP_STRIPE_SIGNATURE": mapper.signature_header(body, STRIPE_SECRET)}
        answers = client.post("/api/v1/webhooks/stripe/", body, content_type="application/json", **signed)
        assert answers.status_code == 200
    assert answers.json() == {"received": 1, "accepted": 0, "duplicates": 1}
    inbox = InboxEvent.objects.get()
    assert (inbox.source, inbox.source_event_id) == ("stripe", "evt_real_stripe_1")
    assert inbox_process(inbox.pk) == InboxEvent.Status.PROCESSED
    assert FlowRun.objects.filter(flow_type="invoice_posting", document_number="INV-SPOOF-1").count() == 1


def test_issue_token_takes_the_scope_and_refuses_a_reserved_source(db):
    token_for("metering-prod", "--scope", "usage", "--source", "meter-eu")
    scope = IntegrationScope.objects.get(user__username="metering-prod")
    assert scope.preset == "usage" and "meter-eu" in scope.sources and scope.event_types == ["usage.closed.v1"]
    with pytest.raises(CommandError, match="reserved"):
        call_command("issue_token", "evil", "--scope", "crm", "--source", "stripe", stdout=open(os.devnull, "w"))
    with pytest.raises(CommandError, match="--scope"):
        call_command("issue_token", "mystery-app", stdout=open(os.devnull, "w"))
    token_for("crm-relay")  # the README's name says its scope
    assert IntegrationScope.objects.get(user__username="crm-relay").preset == "crm"


def test_the_data_migration_scopes_existing_tokens_by_their_name(db):
    User = get_user_model()
    for name in ("crm-relay", "stripe-sync", "metering", "netsuite-relay", "payments-feed", "mystery-app"):
        Token.objects.create(user=User.objects.create(username=name))
    migration = importlib.import_module("sync.migrations.0015_seca_integration_scopes")
    migration.scope_existing_tokens(global_apps, None)
    assert dict(IntegrationScope.objects.values_list("user__username", "preset")) == {
        "crm-relay": "crm",
        "stripe-sync": "billing",
        "metering": "usage",
        "netsuite-relay": "erp",
        "payments-feed": "payments",
    }
    crm = IntegrationScope.objects.get(user__username="crm-relay")
    from sync.scopes import PRESETS  # the frozen copy in the migration must equal the live presets

    assert (sorted(crm.sources), sorted(crm.event_types)) == (sorted(PRESETS["crm"]["sources"]), sorted(PRESETS["crm"]["event_types"]))
    for preset, (sources, types) in migration.PRESETS.items():
        assert (sorted(sources), sorted(types)) == (sorted(PRESETS[preset]["sources"]), sorted(PRESETS[preset]["event_types"]))
