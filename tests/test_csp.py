"""Content-Security-Policy: every page says script only from this server, and no page carries an
inline script (the browser test tests/browser/test_csp.py checks the browser agrees). The API
docs page loads nothing from another host."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory

pytestmark = pytest.mark.django_db

PAGES = ["/", "/orders/", "/amendments/", "/invoices/", "/sla/", "/connectors/", "/exceptions/", "/exceptions/groups/", "/reconciliation/", "/traces/"]
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


def inline_scripts(html: str) -> list[str]:
    return [body.strip()[:120] for attrs, body in SCRIPT.findall(html) if "src=" not in attrs or body.strip()]


def test_the_policy_allows_script_only_from_this_server(client, itops):
    client.force_login(itops)
    policy = client.get("/")["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if " " in d.strip())
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe-eval" not in policy and "http" not in policy


def test_no_page_carries_an_inline_script(client, itops):
    call_command("seed_kpi_demo", days=3, scale=0.1, seed=5, stdout=open("/dev/null", "w"))
    run = FlowRunFactory(status="failed")
    exc = SyncExceptionFactory(step=FlowStepFactory(flow_run=run), flow_run=run)
    client.force_login(itops)
    for url in [*PAGES, f"/traces/{run.pk}/", f"/exceptions/{exc.pk}/", "/?part=trends", "/api/v1/docs/", "/logout-then-login/"]:
        if url == "/logout-then-login/":
            client.logout()
            url = "/login/"
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert inline_scripts(html) == [], url
        assert not re.search(r"\son[a-z]+\s*=", html.replace("\n", " ").split("<body", 1)[-1]) or url == "/api/v1/docs/", url
        if url == "/?part=trends":
            overview = html
    assert 'class="q2c-chart" data-plotly=' in overview  # charts travel as data for static/js/portal.js


def test_the_api_docs_page_references_no_other_host(client):
    html = client.get("/api/v1/docs/").content.decode()
    hosts = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//([^/"'\s>]+)""", html)
    assert hosts == [], hosts
    assert re.search(r'<script src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle\.js', html)
    script = re.search(r'<script src="([^"]*\?script[^"]*)"', html).group(1).replace("&amp;", "&")
    start = client.get(script)
    assert start.status_code == 200 and "://" not in start.content.decode()  # the start script names no other host
