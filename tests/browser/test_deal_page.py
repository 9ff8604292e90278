"""The deal page in headless Chromium: a deal whose id has a slash, with an upgrade, an open
exception and a later cancellation; the lifecycle line, the money and the story as a person sees
them. Writes a screenshot to $Q2C_SHOTS (default: the test's temporary directory)."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory
from tests.monitoring.dashboards.test_deal_page import _deal

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_deal_page_tells_the_whole_story(make_user, login, live_server, tmp_path):
    deal = _deal("SF/ORD-4711", paid=Decimal("900.00"), cancelled=True)
    upgrade = FlowRunFactory(
        flow_type="amendment",
        document_number="AMD-4711",
        deal_id="SF/ORD-4711",
        currency="EUR",
        amount=Decimal("2400.00"),
        status="failed",
        business_started_at=deal["payment"].business_started_at,
        account_name="Initech GmbH",
        legal_entity="DE01",
    )
    SyncExceptionFactory(
        step=FlowStepFactory(flow_run=upgrade, name="erp_change", system="netsuite"),
        error_class="mapping",
        message="No revenue arrangement for contract line PLAT-SEAT",
        amount=Decimal("2400.00"),
        currency="EUR",
    )
    page = login(make_user("rick", "RevOps"))
    page.set_viewport_size({"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(live_server.url + reverse("monitoring:deal_detail", args=["SF/ORD-4711"]))
    assert response.status == 200
    assert page.locator("[data-deal-id]").inner_text() == "SF/ORD-4711"
    assert page.locator("[data-deal-stage]").inner_text() == "Cancelled"
    states = dict(
        zip(
            page.locator("#lifecycle .stage").evaluate_all("els => els.map(e => e.dataset.stage)"),
            page.locator("#lifecycle .stage").evaluate_all("els => els.map(e => e.dataset.state)"),
        )
    )
    assert states["first_invoice"] == "done" and states["cancellation"] == "done" and states["amendment"] == "failed"
    assert page.locator('[data-figure="deal-remaining"]').inner_text() == "EUR 600.00"
    assert page.locator("#flows tbody tr").count() == 5  # order, invoice, payment, the amendment, the cancellation
    page.locator('#exceptions a:has-text("No revenue arrangement")').click()
    page.wait_for_url("**/exceptions/*/")
    page.go_back()
    page.evaluate("window.scrollTo(0, 0)")
    shots = Path(os.environ.get("Q2C_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "deal_page.png"), full_page=True)
    assert (shots / "deal_page.png").stat().st_size > 20_000
    assert errors == []
