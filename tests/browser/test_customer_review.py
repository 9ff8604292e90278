"""The customer match review in headless Chromium: Finance sees both records side by side with
per-field evidence and the score, merges, sees the flow set free, and unmerges; an executive
sees the same review without a single decision button."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from sync.customers.matching import customer_for_account
from sync.models import Customer, CustomerMatch, FlowRun, LegalEntity, SyncException

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
VAT = "DE136695976"
SHOTS = os.environ.get("Q2C_SCREENSHOTS", "")  # a folder (never committed) to look at the page


@pytest.fixture
def no_dispatch(monkeypatch):
    from sync.engine import runner

    sent = []
    monkeypatch.setattr(runner, "dispatch_flow", lambda run_id, queue="flows", countdown=None: sent.append(run_id) or True)
    return sent


@pytest.fixture
def conflict(db, no_dispatch) -> SyncException:
    """ACME GmbH is a customer; an order for a second CRM account “Acme, G.m.b.H.” with the same
    VAT id runs its validate step in-process and parks on the review."""
    from sync.engine.runner import flow_run, flow_start
    from sync.flows.registry import flow_for

    call_command("seed_reference_data", stdout=open(os.devnull, "w"))
    de01 = LegalEntity.objects.get(code="DE01")
    customer_for_account(
        source="crm-relay",
        account={"external_id": "001ACME", "name": "ACME GmbH", "tax_id": VAT, "country": "DE", "segment": "Enterprise"},
        currency="EUR",
        entity=de01,
    )
    envelope = {
        "id": "evt-mdm-ui",
        "type": "order.closed_won.v1",
        "source": "crm-relay",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {
            "order_number": "ORD-MDM-UI",
            "account": {"external_id": "001ACME2", "name": "Acme, G.m.b.H.", "tax_id": "de136695976", "country": "DE", "email": "ap@acme-gmbh.example"},
            "currency": "EUR",
            "legal_entity": "DE01",
            "closed_won_at": "2026-11-23T10:00:00Z",
            "lines": [{"sku": "PLAT-SEAT", "quantity": "10", "unit_price": "40.00", "billing": "recurring", "interval": "month"}],
        },
    }
    run, _ = flow_start(flow=flow_for("order_activation"), envelope=envelope)
    assert flow_run(run.pk) == "parked"
    return SyncException.objects.get(error_class="conflict")


def shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def test_finance_merges_from_the_side_by_side_review_and_unmerges(login, finance, live_server, conflict, no_dispatch):
    page = login(finance)
    page.goto(f"{live_server.url}/exceptions/{conflict.pk}/")
    review = page.locator("#review")
    expect(review).to_contain_text("score 100.0")
    expect(review.locator("[data-decision]")).to_have_text("waiting for a decision")
    expect(review.locator("table.side-by-side")).to_contain_text("ACME GmbH")
    expect(review.locator("table.side-by-side")).to_contain_text("Acme, G.m.b.H.")
    expect(review.locator("table.evidence tr[data-field=tax_id]")).to_contain_text("same")
    expect(review.locator("table.evidence tr[data-field=name]")).to_contain_text("identical after normalising")
    expect(review).to_contain_text("1 flow waits for this decision")
    expect(page.locator("#actions")).not_to_contain_text("Retry step")  # the decision moves it on, not a retry
    shot(page, "review-open")

    review.locator("input[name=note]").first.fill("one company, two CRM accounts")
    review.locator("button:has-text('Merge into the survivor')").click()
    expect(page.locator("#review [data-decision]")).to_have_text("merged")
    expect(page.locator("#review")).to_contain_text("Merged: one customer with both records' references")
    expect(page.locator("#exc-status [data-status]")).to_have_text("Resolved")
    expect(page.locator("#history")).to_contain_text("Customers merged")
    shot(page, "review-merged")
    assert Customer.objects.filter(merged_into__isnull=True).count() == 1
    run = FlowRun.objects.get(document_number="ORD-MDM-UI")
    assert run.status == "pending" and no_dispatch[-1] == run.pk  # resumed: queued for a worker

    page.locator("#review form.unmerge input[name=note]").fill("two legal entities in one VAT group")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#review button:has-text('Unmerge')").click()
    expect(page.locator("#review [data-decision]")).to_have_text("unmerged (kept separate)")
    expect(page.locator("#review")).to_contain_text("was undone by fiona")
    shot(page, "review-unmerged")
    assert Customer.objects.filter(merged_into__isnull=True).count() == 2
    assert CustomerMatch.objects.get(outcome="review").decision == "unmerged"


def test_an_executive_sees_the_review_but_no_decision(login, executive, live_server, conflict):
    page = login(executive)
    page.goto(f"{live_server.url}/exceptions/{conflict.pk}/")
    expect(page.locator("#review table.evidence")).to_be_visible()
    expect(page.locator("#review")).to_contain_text("Finance and IT Operations decide customer matches")
    expect(page.locator("#review button")).to_have_count(0)


def test_revops_may_comment_but_not_merge(client, revops, conflict):
    client.force_login(revops)
    assert client.post(f"/exceptions/{conflict.pk}/customer/merge/", {"note": "x"}).status_code == 403
    assert Customer.objects.filter(merged_into__isnull=True).count() == 2
