"""The customer-match decisions as services and pages: who may decide, what is refused while a
match waits, and that a customer sync parked on a review resumes after the decision."""

from __future__ import annotations

import os

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command

from monitoring.exceptions import services
from sync.customers.matching import customer_for_account
from sync.models import AuditEntry, Customer, CustomerMatch, FlowRun, LegalEntity, SyncException

pytestmark = pytest.mark.django_db
VAT = "DE136695976"


@pytest.fixture
def sent(monkeypatch):
    from sync.engine import runner

    calls = []
    monkeypatch.setattr(runner, "dispatch_flow", lambda run_id, queue="flows", countdown=None: calls.append(run_id) or True)
    return calls


@pytest.fixture
def parked_sync(db, sent, django_capture_on_commit_callbacks):
    """A customer sync for a second CRM account of ACME parks on its review."""
    from sync.engine.runner import flow_run, flow_start
    from sync.flows.registry import flow_for

    call_command("seed_reference_data", stdout=open(os.devnull, "w"))
    de01 = LegalEntity.objects.get(code="DE01")
    customer_for_account(source="salesforce", account={"external_id": "001A", "name": "ACME GmbH", "tax_id": VAT}, currency="EUR", entity=de01)
    envelope = {
        "id": "evt-cs-1",
        "type": "customer.upserted.v1",
        "source": "salesforce",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {"account": {"external_id": "001B", "name": "Acme G.m.b.H.", "tax_id": VAT}, "currency": "EUR", "legal_entity": "DE01"},
    }
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = flow_start(flow=flow_for("customer_sync"), envelope=envelope)
    assert flow_run(run.pk) == "parked"
    run.refresh_from_db()
    return run


def test_a_customer_sync_parks_on_one_conflict_and_resumes_when_kept_separate(parked_sync, finance, sent, django_capture_on_commit_callbacks):
    exc = SyncException.objects.get(error_class="conflict")
    assert exc.flow_type == "customer_sync" and exc.step_name == "match" and exc.status == "open"
    assert parked_sync.waits_for == CustomerMatch.objects.get(outcome="review").waits_for
    with django_capture_on_commit_callbacks(execute=True):
        services.customer_match_decide(exception_id=exc.pk, user=finance, decision="separate", note="a VAT group of two companies")
    parked_sync.refresh_from_db()
    exc.refresh_from_db()
    assert parked_sync.status == "pending" and sent[-1] == parked_sync.pk
    assert exc.status == "resolved" and "Kept separate" in exc.resolution_note
    entry = AuditEntry.objects.get(object_type="exception", object_id=str(exc.pk), action="customer_kept_separate")
    assert entry.actor == finance
    assert Customer.objects.filter(merged_into__isnull=True).count() == 2


def test_only_stewards_decide_and_nobody_closes_the_row_around_the_decision(parked_sync, revops, itops):
    exc = SyncException.objects.get(error_class="conflict")
    with pytest.raises(PermissionDenied):
        services.customer_match_decide(exception_id=exc.pk, user=revops, decision="merge")
    with pytest.raises(ValidationError, match="customer-match decision"):
        services.exception_resolve(exception_id=exc.pk, user=itops, note="looks fine")
    with pytest.raises(ValidationError, match="customer-match decision"):
        services.exception_ignore(exception_id=exc.pk, user=itops, reason="later")
    with pytest.raises(ValidationError, match="customer-match decision"):
        services.exception_retry(exception_id=exc.pk, user=itops)
    with pytest.raises(ValidationError, match="Say why"):
        services.customer_unmerge(exception_id=exc.pk, user=itops, note="")
    services.customer_match_decide(exception_id=exc.pk, user=itops, decision="owner")
    assert Customer.objects.filter(merged_into__isnull=True).count() == 1
    with pytest.raises(ValidationError, match="already decided"):
        services.customer_match_decide(exception_id=exc.pk, user=itops, decision="merge")
    services.customer_unmerge(exception_id=exc.pk, user=itops, note="two companies")
    assert Customer.objects.filter(merged_into__isnull=True).count() == 2
    assert FlowRun.objects.get(pk=parked_sync.pk).status in ("pending", "parked")


def test_the_page_answers_a_plain_form_post_with_a_redirect_and_a_message(client, parked_sync, finance):
    exc = SyncException.objects.get(error_class="conflict")
    client.force_login(finance)
    response = client.post(f"/exceptions/{exc.pk}/customer/merge/", {"survivor": "record", "note": "keep the newer account"}, follow=True)
    assert response.status_code == 200 and "Merged: one customer" in response.content.decode()
    survivor = Customer.objects.get(merged_into__isnull=True)
    assert survivor.name == "Acme G.m.b.H."  # the arriving record survived, as chosen
    bad = client.post(f"/exceptions/{exc.pk}/customer/unmerge/", {"note": ""}, follow=True)
    assert "Say why the merge was wrong" in bad.content.decode()
