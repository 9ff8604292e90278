"""KPI dashboards in headless Chromium: tiles, rendered Plotly charts, filters in the URL.

Also writes a full-page screenshot of every dashboard screen, with demo data, to
screenshots/ (git-ignored) for a human to look at:

    bin/test tests/browser/test_dashboards.py -k screenshots
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from sync.models import FlowRun, FlowType

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
SCREENS = ["/", "/orders/", "/amendments/", "/invoices/", "/sla/", "/connectors/", "/exceptions/", "/reconciliation/"]


@pytest.fixture
def demo_data(db):
    call_command("seed_kpi_demo", days=14, scale=0.25, seed=11, stdout=open("/dev/null", "w"))


def test_an_executive_sees_the_tiles_and_a_rendered_chart(make_user, login, live_server, demo_data):
    page = login(make_user("erin", "Executive"))
    page.goto(f"{live_server.url}/")
    tiles = page.locator("#kpis .tile")
    assert tiles.count() == 6
    assert "Order cycle time p50" in tiles.first.text_content()
    assert page.locator("[data-figure=revenue-at-risk]").inner_text().startswith("USD ")
    chart = page.locator("#chart-cycle .js-plotly-plot")
    chart.wait_for()
    assert chart.locator("svg.main-svg").count() >= 1  # Plotly drew it (vendored JS, no CDN)
    assert chart.locator(".scatterlayer .trace").count() == 2  # p50 and p90 lines
    # the numbers behind the chart are one click away
    page.locator("#chart-cycle details.numbers summary").click()
    first_day = page.locator("#chart-cycle details.numbers tbody a").first
    assert "basis=completed" in first_day.get_attribute("href")
    # an executive gets no SLA edit form
    page.goto(f"{live_server.url}/sla/")
    assert page.locator("form.policy-form").count() == 0


def test_trends_that_fail_to_load_say_so_and_load_on_retry(make_user, login, live_server, demo_data):
    """The Overview's trends are their own request: a 500 there shows a readable error with
    Retry instead of a skeleton forever; Retry loads the charts once the server answers."""
    page = login(make_user("erin", "Executive"))
    failing = {"on": True}

    def maybe_fail(route):
        if failing["on"]:
            route.fulfill(status=500, body="boom")
        else:
            route.continue_()

    page.route("**/?part=trends*", maybe_fail)
    page.goto(f"{live_server.url}/")
    alert = page.locator(".htmx-error[role=alert]")
    alert.wait_for()
    assert "HTTP 500" in alert.inner_text() and page.locator("#chart-cycle").count() == 0
    SHOTS.mkdir(exist_ok=True)
    alert.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "overview_trends_error.png"))
    failing["on"] = False
    alert.locator("button", has_text="Retry").click()
    page.locator("#chart-cycle .js-plotly-plot").wait_for()
    assert page.locator(".htmx-error").count() == 0


def test_filters_change_the_url_and_refresh_the_dashboard_in_place(make_user, login, live_server, demo_data):
    page = login(make_user("erin", "Executive"))
    page.goto(f"{live_server.url}/orders/")
    marker = page.evaluate("() => { window.__notReloaded = true; return true; }")
    assert marker
    page.locator(".window-form .chip", has_text="7 days").click()
    page.wait_for_url("**/orders/?days=7")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("() => window.__notReloaded === true")  # htmx swapped #dashboard, no full reload
    page.select_option(".window-form select[name=entity]", "DE01")
    page.locator(".window-form button[type=submit]").click()
    page.wait_for_url("**entity=DE01**")
    page.wait_for_load_state("networkidle")
    entities = page.locator("#dashboard table").last.locator("tbody td:first-child").all_inner_texts()
    assert entities == ["DE01"]


def test_the_trace_shows_the_deal_lifecycle_as_one_line(make_user, login, live_server, demo_data):
    page = login(make_user("rick", "RevOps"))
    run = FlowRun.objects.filter(flow_type=FlowType.ORDER_ACTIVATION, status="completed", document_number__in=_orders_with_invoice()).first()
    page.goto(f"{live_server.url}/traces/{run.pk}/")
    stages = page.locator("#lifecycle .stage")
    assert stages.all_inner_texts()[0].startswith("Closed won")
    assert stages.count() >= 5  # the five stages, then any amendment, renewal or cancellation of the deal
    assert page.locator("#lifecycle .stage.done").count() >= 4  # closed-won, ERP order, subscription, first invoice


def _orders_with_invoice() -> list[str]:
    from sync.models import Invoice

    return list(Invoice.objects.filter(subscription__order__isnull=False).values_list("subscription__order__number", flat=True)[:50])


def test_screenshots_of_every_dashboard_screen(make_user, login, live_server, demo_data):
    SHOTS.mkdir(exist_ok=True)
    page = login(make_user("oscar", "IT Operations"))
    page.set_viewport_size({"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for path in SCREENS:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        name = path.strip("/") or "overview"
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    trace = FlowRun.objects.filter(flow_type=FlowType.ORDER_ACTIVATION, document_number__in=_orders_with_invoice()).first()
    page.goto(f"{live_server.url}/traces/{trace.pk}/")
    page.screenshot(path=str(SHOTS / "trace_detail.png"), full_page=True)
    assert errors == []
    assert all((SHOTS / f"{(p.strip('/') or 'overview')}.png").stat().st_size > 20_000 for p in SCREENS)
