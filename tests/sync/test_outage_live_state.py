"""A NetSuite outage as on-call sees it, end to end: the outage injected through the sandbox's
fault API, a real worker driving a real order into it, and the hub telling the truth while it
lasts — the banner on every page, /healthz "degraded" with detail, the step waiting with its next
attempt and attempts left — and again once it is over.

Screenshots of the Overview and the exception queue during the outage, for people to look at:

    Q2C_SCREENSHOTS=/tmp/q2c-outage bin/test tests/sync/test_outage_live_state.py -p no:randomly  (Overview, deal page, queue)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from sync.engine.inbox import accept_canonical
from sync.models import ConnectorState, FlowRun, FlowStep

from .conftest import wait_for
from .test_flows_e2e import ns_sales_orders, order_event

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NETSUITE_ATTEMPTS = 30  # the order waits through the outage instead of becoming an exception
WORKER = {
    # a retry every few seconds; the first failed call opens the circuit, probes after 2 s
    "Q2C_RETRY_BASE_SECONDS": "3",
    "Q2C_RETRY_CAP_SECONDS": "5",
    "Q2C_MAX_ATTEMPTS_NETSUITE": str(NETSUITE_ATTEMPTS),
    "Q2C_CIRCUIT_THRESHOLD": "1",
    "Q2C_CIRCUIT_COOLDOWN_SECONDS": "2",
}


@pytest.fixture
def same_retry_limits(settings):
    """The pages compute attempts left from the same limits the worker runs with."""
    settings.SYNC_RETRY = {**settings.SYNC_RETRY, "max_attempts_by_system": {**settings.SYNC_RETRY["max_attempts_by_system"], "netsuite": NETSUITE_ATTEMPTS}}


def _shot(page, name: str) -> None:
    folder = os.environ.get("Q2C_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_during_a_netsuite_outage_every_page_says_so_health_is_degraded_and_the_order_waits_with_its_next_attempt(
    stack, reference_data, same_retry_limits, client, login, itops, live_server
):
    netsuite = stack.sandboxes["netsuite"]
    netsuite.faults(outage=True)  # every NetSuite request answers 503
    worker = stack.start_worker(**WORKER)
    accept_canonical([order_event("ORD-OUTAGE-1")])

    def waiting():
        return FlowStep.objects.filter(flow_run__document_number="ORD-OUTAGE-1", name="erp_customer", status=FlowStep.Status.RETRY).first()

    try:
        wait_for(waiting, timeout=120)
    except AssertionError:
        steps = list(FlowStep.objects.values_list("name", "status", "attempts", "error_message"))
        pytest.fail(f"the order's first NetSuite step never waited to retry: {steps}\n{worker.output()}")
    wait_for(lambda: ConnectorState.objects.filter(system="netsuite").exclude(circuit="closed").exists(), message="the circuit did not open")

    # /healthz: alive (200), degraded, and why
    health = client.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded" and "NetSuite is not answering" in body["reason"]
    detail = body["connectors"]["systems"]["netsuite"]
    assert detail["status"] == "down" and detail["circuit"] in ("open", "half_open") and detail["down_since"]
    assert detail["waiting_steps"] == 1 and detail["next_attempt_at"]
    assert "temporarily unavailable" in detail["last_error"]
    assert body["checks"]["postgres"]["ok"] and body["checks"]["broker"]["ok"]

    # the Overview, as IT operations see it
    page = login(itops)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/")
    banner = page.locator("#outage-banner")
    expect(banner).to_contain_text("NetSuite (ERP) is not answering since")
    expect(banner).to_contain_text("1 step waits and retries by itself")
    expect(banner).to_contain_text("Nothing is lost")
    expect(banner.get_by_role("link", name="Connectors →")).to_be_visible()
    page.wait_for_load_state("networkidle")  # the trends load after the page: let them draw before the picture
    _shot(page, "overview-during-netsuite-outage")

    # the deal's page: the banner, and the deal waiting at its ERP step (not failed, not done)
    page.goto(f"{live_server.url}/deals/ORD-OUTAGE-1/")
    expect(page.locator("#outage-banner")).to_contain_text("NetSuite (ERP) is not answering")
    stage = page.locator("[data-stage='erp_order']")
    expect(stage).to_have_attribute("data-state", "now")
    # closed-won long ago: the order is past its SLA, which is why its value is at risk with no exception yet
    expect(page.locator("[data-money='at_risk']")).to_contain_text("0 open exceptions · 1 flow past its SLA")
    _shot(page, "deal-page-during-netsuite-outage")

    # the exception queue: no exception yet, but the waiting step, its next attempt and attempts left
    page.goto(f"{live_server.url}/exceptions/")
    expect(page.locator("#outage-banner")).to_contain_text("NetSuite (ERP) is not answering")
    expect(page.locator("#counts [data-waiting]")).to_have_attribute("data-waiting", "1")
    expect(page.locator("#counts")).to_contain_text("step waiting to retry")
    expect(page.locator("#counts")).to_contain_text("next ")
    row = page.locator("#waiting tr[data-step]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("ORD-OUTAGE-1")
    expect(row).to_contain_text("erp_customer")
    expect(row).to_contain_text(re.compile(rf"\d+ of {NETSUITE_ATTEMPTS}"))
    expect(row).to_contain_text(re.compile(r"\d+ left"))
    expect(row.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    _shot(page, "exception-queue-during-netsuite-outage")

    # the outage ends: the step's next attempt goes through, the order completes, the banner goes
    netsuite.faults()
    run = wait_for(
        lambda: FlowRun.objects.filter(document_number="ORD-OUTAGE-1", status__in=["completed", "failed"]).first(), timeout=90, message="order never finished"
    )
    assert run.status == "completed", list(run.steps.values("name", "status", "attempts", "error_message"))
    assert ns_sales_orders("SO-ORD-OUTAGE-1") == 1  # once, whatever the retries
    expect(page.locator("#outage-banner")).not_to_have_class(re.compile(r"\bon\b"), timeout=30_000)  # htmx refreshed it
    expect(page.locator("#outage-banner")).not_to_contain_text("NetSuite")
    after = client.get("/healthz").json()
    assert after["status"] == "ok" and after["connectors"]["systems"]["netsuite"]["status"] == "ok"
    assert after["connectors"]["systems"]["netsuite"]["waiting_steps"] == 0
