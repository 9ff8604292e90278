"""The exception queue in headless Chromium: IT operations filter, open, retry and watch the
state change; an executive sees the story without a single action button."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from sync.models import FlowStep, SyncException
from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def no_dispatch(monkeypatch):
    """Keep the retried flow in this test's hands: no Celery message for a worker elsewhere to pick up."""
    from sync.engine import runner

    sent = []
    monkeypatch.setattr(runner, "dispatch_flow", lambda run_id, queue="flows", countdown=None: sent.append(run_id) or True)
    return sent


def _failed(document: str, error_class: str, message: str) -> SyncException:
    run = FlowRunFactory(status="failed", document_number=document)
    FlowStepFactory(flow_run=run, seq=1, name="erp_customer", status="succeeded", response_summary={"erp_customer_id": "CUST-77"})
    return SyncExceptionFactory(step=FlowStepFactory(flow_run=run, seq=2, name="erp_sales_order"), error_class=error_class, message=message)


def test_it_operations_filters_to_one_error_class_opens_an_exception_and_retries_it(login, itops, live_server, no_dispatch):
    target = _failed("ORD-4242", "not_found", "Invalid Field Value SKU-42 for the following field: item")
    _failed("ORD-5151", "auth", "Invalid login attempt")
    page = login(itops)
    page.goto(f"{live_server.url}/exceptions/")
    expect(page.locator("#table")).to_contain_text("ORD-5151")

    page.select_option("select[name=error_class]", "not_found")  # htmx swaps the table, the URL follows
    expect(page.locator("#table")).not_to_contain_text("ORD-5151")
    expect(page).to_have_url(re.compile(r"error_class=not_found"))
    expect(page.locator("#table")).to_contain_text("ORD-4242")

    page.click("text=ORD-4242")
    expect(page.locator("h1")).to_contain_text("ORD-4242")
    expect(page.locator("#actions")).to_contain_text(target.step.idempotency_key)  # what the retry will do, first
    expect(page.locator("#actions")).to_contain_text("erp_customer")  # and what is already done
    expect(page.locator("#exc-status [data-status]")).to_have_text("Open")

    page.click("button:has-text('Retry step')")
    expect(page.locator("#exc-status [data-status]")).to_have_text("Retrying")
    expect(page.locator("#history")).to_contain_text("Retry requested")
    target.refresh_from_db()
    assert target.status == "retrying" and target.retries == 1
    assert FlowStep.objects.get(pk=target.step_id).status == "pending"
    assert no_dispatch == [target.flow_run_id]  # the engine queued the flow once


def test_retry_from_the_queue_row_updates_the_row_in_place(login, itops, live_server, no_dispatch):
    target = _failed("ORD-6161", "mapping", "No price mapped")
    page = login(itops)
    page.goto(f"{live_server.url}/exceptions/")
    row = page.locator(f"#exc-{target.pk}")
    row.get_by_text("Retry…").click()
    expect(row).to_contain_text(target.step.idempotency_key)
    row.get_by_role("button", name="Retry step").click()
    expect(page.locator(f"#exc-{target.pk} .pill.retrying")).to_have_text("Retrying")
    expect(page.locator("#counts")).to_contain_text("1 retrying")  # the counts refreshed themselves


def test_an_executive_sees_no_action_buttons_and_action_urls_answer_403(login, executive, live_server):
    target = _failed("ORD-7171", "validation", "Please enter value(s) for: Subsidiary")
    page = login(executive)
    page.goto(f"{live_server.url}/exceptions/")
    expect(page.locator("#table")).to_contain_text("ORD-7171")
    assert page.locator("text=Retry…").count() == 0
    assert page.locator("text=Retry all").count() == 0
    page.click("text=ORD-7171")
    expect(page.locator("h1")).to_contain_text("ORD-7171")
    expect(page.locator("#actions")).to_contain_text("not act on them")
    assert page.locator("#actions button").count() == 0
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    for action in ("retry", "resolve", "ignore", "assign", "cancel"):
        response = page.request.post(
            f"{live_server.url}/exceptions/{target.pk}/{action}/", form={"note": "x", "reason": "x"}, headers={"X-CSRFToken": csrf, "Referer": live_server.url}
        )
        assert response.status == 403, action
    target.refresh_from_db()
    assert target.status == "open" and target.retries == 0


def test_retry_after_the_sandbox_is_healed_resolves_the_exception(login, itops, live_server, sandbox_servers, point_connector, no_dispatch):
    from sync.canonical.store import safe_external_id
    from sync.engine.runner import flow_run, flow_start
    from sync.flows.registry import flow_for
    from tests.factories import LegalEntityFactory

    netsuite = sandbox_servers("netsuite")
    point_connector("netsuite", netsuite)
    LegalEntityFactory()
    account = f"001{uuid.uuid4().hex[:12]}"
    netsuite.faults(fail_records=[safe_external_id("CUST", account)])  # NetSuite refuses this customer
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "customer.upserted.v1",
        "source": "salesforce",
        "occurred_at": "2026-11-20T10:00:00Z",
        "data": {"account": {"external_id": account, "name": f"Vandelay Industries {account[-4:]}"}, "currency": "USD", "legal_entity": "US01"},
    }
    run, _ = flow_start(flow=flow_for("customer_sync"), envelope=envelope)
    assert flow_run(run.pk) == "failed"
    exc = SyncException.objects.get(flow_run=run, status="open")
    assert exc.system == "netsuite" and exc.step_name == "erp_customer"

    page = login(itops)
    page.goto(f"{live_server.url}/exceptions/")
    page.select_option("select[name=error_class]", exc.error_class)
    expect(page).to_have_url(re.compile(f"error_class={exc.error_class}"))
    page.locator(f"#exc-{exc.pk} a.doc").click()
    expect(page.locator(".target-said")).to_contain_text("Invalid Field Value")

    netsuite.faults()  # healed
    page.click("button:has-text('Retry step')")
    expect(page.locator("#exc-status [data-status]")).to_have_text("Retrying")
    flow_run(run.pk)  # the worker's part, run here where the connector points at the sandbox
    expect(page.locator("#exc-status [data-status]")).to_have_text("Resolved", timeout=15_000)  # the page polls while retrying
    expect(page.locator("#history")).to_contain_text("Resolved automatically")
    exc.refresh_from_db()
    assert exc.status == "resolved"
