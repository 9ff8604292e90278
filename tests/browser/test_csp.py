"""In Chromium, as oscar (IT Operations, who sees every screen): no page breaks its
Content-Security-Policy, the charts are drawn (Plotly, from data, no inline script) and htmx
regions load. A violation shows as a `securitypolicyviolation` event and a console error."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = ["/", "/orders/", "/amendments/", "/invoices/", "/sla/", "/connectors/", "/exceptions/", "/exceptions/groups/", "/reconciliation/", "/traces/"]
WATCH = """() => { window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", e => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI)); }"""


def test_no_main_page_violates_the_policy_and_charts_still_draw(make_user, login, live_server, page):
    call_command("seed_kpi_demo", days=7, scale=0.2, seed=3, stdout=open("/dev/null", "w"))
    run = FlowRunFactory(status="failed")
    exc = SyncExceptionFactory(step=FlowStepFactory(flow_run=run), flow_run=run)
    console = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.add_init_script(f"({WATCH})()")
    login(make_user("oscar", "IT Operations"))
    for path in [*PAGES, f"/traces/{run.pk}/", f"/exceptions/{exc.pk}/", "/api/v1/docs/"]:
        console.clear()
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        violations = page.evaluate("window.__cspViolations")
        assert violations == [], (path, violations)
        assert not [c for c in console if "Content Security Policy" in c], (path, console)
        if path == "/":
            chart = page.locator("#chart-cycle .js-plotly-plot")
            chart.wait_for()
            assert chart.locator("svg.main-svg").count() >= 1  # Plotly drew it from the data attribute
        if path == "/api/v1/docs/":
            page.locator("#swagger-ui .opblock").first.wait_for(timeout=20_000)  # Swagger UI drew the operations
            assert page.evaluate("window.__cspViolations") == []
