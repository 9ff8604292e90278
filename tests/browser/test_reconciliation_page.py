"""In Chromium: the Reconciliation page draws its charts under the CSP (no inline script), its
filters swap the break list over htmx, and "Run now" shows the run's live progress."""

from __future__ import annotations

import pytest

from sync.models import ReconciliationRun
from tests.monitoring.dashboards.test_reconciliation_page import _break, _run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_charts_filters_and_run_now_in_the_browser(make_user, login, live_server, page):
    run = _run()
    _break(run, "INV-1", age_days=45)
    _break(run, "INV-3", kind="missing_in_erp", value="990.00", age_days=100)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None)
    login(make_user("fiona", "Finance"))
    page.goto(f"{live_server.url}/reconciliation/")
    page.wait_for_load_state("networkidle")
    page.locator(".q2c-chart.js-plotly-plot svg.main-svg").first.wait_for()
    assert page.locator(".q2c-chart.js-plotly-plot").count() == 2  # trend and ageing, drawn from data
    page.select_option("select[name=break_type]", "missing_in_erp")
    page.wait_for_function("() => !document.querySelector('#table').innerText.includes('INV-1')")
    assert "INV-3" in page.locator("#table").inner_text()
    assert "break_type=missing_in_erp" in page.url
    page.click("[data-action=run-now]")
    page.locator("#recon-progress[hx-trigger]").wait_for()
    queued = ReconciliationRun.objects.exclude(pk=run.pk).get()
    assert queued.status == "queued" and queued.trigger == "screen"
    assert f"Run #{queued.pk}" in page.locator("#recon-progress").inner_text()
    ReconciliationRun.objects.filter(pk=queued.pk).update(status="running", progress=55, phase="reading netsuite")
    page.wait_for_function("() => document.querySelector('#recon-progress').innerText.includes('55%')", timeout=10_000)
    ReconciliationRun.objects.filter(pk=queued.pk).update(status="failed", progress=60, error="bench")
    page.wait_for_function(
        f"() => !document.querySelector('#recon-progress') || !document.querySelector('#recon-progress').innerText.includes('Run #{queued.pk}')", timeout=10_000
    )
    assert violations == []
