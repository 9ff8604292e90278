"""Customer master data on the real stack: events API → inbox → worker → order activation's
"ensure customer" → one conflict exception → merge through the API → the parked order resumes →
one canonical customer with both references → unmerge → two customers again."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from sync.models import Customer, CustomerMatch, ExternalRef, FlowRun, SyncException

from .conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
VAT = "DE136695976"


def order(number: str, account_id: str, name: str, tax_id: str) -> dict:
    return {
        "id": f"evt-{number}",
        "type": "order.closed_won.v1",
        "source": "crm-relay",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {
            "order_number": number,
            "account": {"external_id": account_id, "name": name, "tax_id": tax_id, "country": "DE"},
            "currency": "EUR",
            "legal_entity": "DE01",
            "closed_won_at": "2026-11-23T10:00:00Z",
            "effective_date": "2026-11-23",
            "lines": [
                {"sku": "PLAT-SEAT", "description": "Platform seats", "quantity": "10", "unit_price": "40.00", "billing": "recurring", "interval": "month"}
            ],
        },
    }


@pytest.fixture
def relay(client):
    call_command("issue_token", "crm-relay", stdout=open(os.devnull, "w"))
    token = Token.objects.get(user__username="crm-relay").key
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def run_of(number: str) -> FlowRun | None:
    return FlowRun.objects.filter(flow_type="order_activation", document_number=number).first()


def refs(customer_id) -> set[str]:
    return set(ExternalRef.objects.filter(canonical_type="customer", canonical_id=customer_id, object_type="Account").values_list("external_id", flat=True))


def test_two_orders_for_one_company_under_two_crm_accounts_are_one_conflict_merged_and_unmerged(stack, reference_data, relay, client, finance):
    stack.start_worker()
    first = client.post("/api/v1/events/", order("ORD-MDM-1", "001ACME", "ACME GmbH", VAT), content_type="application/json", **relay)
    assert first.status_code == 202, first.content
    done = wait_for(lambda: (r := run_of("ORD-MDM-1")) and r.status in ("completed", "failed") and r, message="first order did not finish")
    assert done.status == "completed", list(done.steps.values("name", "status", "error_message"))

    second = client.post("/api/v1/events/", order("ORD-MDM-2", "001ACME2", "Acme, G.m.b.H.", "de 136 695 976"), content_type="application/json", **relay)
    assert second.status_code == 202
    parked = wait_for(lambda: (r := run_of("ORD-MDM-2")) and r.status == "parked" and r, message="second order did not park for review")
    assert parked.waits_for.startswith("customer-match:") and parked.current_step == "validate"
    conflicts = SyncException.objects.filter(error_class__in=["conflict", "duplicate"])
    assert conflicts.count() == 1
    exc = conflicts.get()
    assert exc.error_class == "conflict" and exc.status == "open" and exc.flow_run_id == parked.pk and exc.system == "hub"
    assert "DE136695976" in exc.message
    assert Customer.objects.filter(merged_into__isnull=True).count() == 2

    # the review as the API shows it: both records, per-field evidence, the score
    client.force_login(finance)
    detail = client.get(f"/api/v1/exceptions/{exc.pk}/").json()
    review = detail["story"]["customer_match"]
    assert review["score"] == "100.0" and review["error_class"] == "conflict" and review["decision"] == ""
    assert {e["field"]: e["comparison"] for e in review["evidence"]} == {"name": "same", "tax_id": "same", "country": "same"}
    assert review["existing_customer"]["name"] == "ACME GmbH" and review["arriving_customer"]["name"] == "Acme, G.m.b.H."
    assert detail["story"]["retry"]["can_retry"] is False  # the decision, not a retry, moves it on

    merged = client.post(f"/api/v1/exceptions/{exc.pk}/customer-match/merge/", {"note": "one company, two CRM accounts"}, content_type="application/json")
    assert merged.status_code == 200, merged.content
    assert merged.json()["status"] == "resolved"
    resumed = wait_for(lambda: (r := run_of("ORD-MDM-2")) and r.status in ("completed", "failed") and r, message="the parked order did not resume")
    assert resumed.status == "completed", list(resumed.steps.values("name", "status", "error_message"))

    (survivor,) = Customer.objects.filter(merged_into__isnull=True)
    assert survivor.name == "ACME GmbH" and refs(survivor.pk) == {"001ACME", "001ACME2"}
    # the second account's order went to the survivor's ERP and billing customers: no second one
    assert resumed.context["steps"]["erp_customer"]["erp_customer_id"] == done.context["steps"]["erp_customer"]["erp_customer_id"]
    assert resumed.context["steps"]["billing_customer"]["billing_customer_id"] == done.context["steps"]["billing_customer"]["billing_customer_id"]
    assert ExternalRef.objects.filter(system="netsuite", object_type="customer").count() == 1
    match = CustomerMatch.objects.get(outcome="review")
    assert match.decision == "merged" and match.decided_by == finance

    unmerged = client.post(f"/api/v1/exceptions/{exc.pk}/customer-match/unmerge/", {"note": "two legal entities after all"}, content_type="application/json")
    assert unmerged.status_code == 200, unmerged.content
    active = Customer.objects.filter(merged_into__isnull=True)
    assert active.count() == 2
    assert {frozenset(refs(c.pk)) for c in active} == {frozenset({"001ACME"}), frozenset({"001ACME2"})}
    assert unmerged.json()["story"]["customer_match"]["decision"] == "unmerged"

    # the duplicate-rate KPI counts the conflict over the two new accounts the orders brought
    kpis = client.get("/api/v1/kpis/").json()
    assert kpis["duplicate_rate"]["conflicts"] == 1 and kpis["duplicate_rate"]["customers_synced"] == 2


def test_an_executive_cannot_merge(client, executive, db):
    client.force_login(executive)
    response = client.post("/api/v1/exceptions/1/customer-match/merge/", {}, content_type="application/json")
    assert response.status_code == 403
