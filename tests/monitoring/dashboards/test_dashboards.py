"""Dashboard pages: empty states that say what to do, htmx partials, drill-downs that add up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sync.models import FlowRun, FlowType
from tests.factories import FlowRunFactory

pytestmark = pytest.mark.django_db
EMPTY_HINTS = {
    "/?part=trends": "Widen the date range",
    "/orders/": "No order was activated in this window",
    "/amendments/": "No amendment, renewal or cancellation was requested in this window",
    "/invoices/": "No invoice was finalized in this window",
    "/sla/": "No flow was due in this window. Widen the range",
}


@pytest.mark.parametrize("path", list(EMPTY_HINTS))
def test_an_empty_dashboard_says_what_to_do(client, executive, path):
    client.force_login(executive)
    assert EMPTY_HINTS[path] in client.get(path).content.decode()


def test_the_overview_loads_its_trends_as_a_second_request_with_the_same_window(client, executive):
    client.force_login(executive)
    page = client.get("/?days=7&entity=US01").content.decode()
    assert 'hx-get="?days=7&amp;entity=US01&amp;part=trends"' in page and 'hx-trigger="load"' in page
    assert 'id="chart-cycle"' not in page  # the page itself does not wait for the charts
    trends = client.get("/?days=7&entity=US01&part=trends", HTTP_HX_REQUEST="true").content.decode()
    assert trends.lstrip().startswith('<div id="trends"') and 'id="chart-cycle"' in trends and "<html" not in trends


def test_the_window_form_refreshes_only_the_dashboard_region_over_htmx(client, executive):
    client.force_login(executive)
    response = client.get("/orders/", {"days": 7}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dashboard")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="dashboard">') and "<html" not in html
    table = client.get("/orders/", {"q": "ORD"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="table").content.decode()
    assert table.lstrip().startswith('<div id="table">')


def test_the_sla_drill_down_lists_exactly_the_breached_flows_it_counts(client, revops):
    now = timezone.now()
    for minutes in (5, 20, 40):  # 15-min target: one met, two breached
        start = now - timedelta(hours=3)
        FlowRunFactory(
            status=FlowRun.Status.COMPLETED,
            business_started_at=start,
            business_completed_at=start + timedelta(minutes=minutes),
            finished_at=start + timedelta(minutes=minutes),
            sla_due_at=start + timedelta(minutes=15),
        )
    client.force_login(revops)
    response = client.get("/sla/", {"flow": FlowType.ORDER_ACTIVATION, "sla": "breached", "days": 1})
    assert response.context["sla"][FlowType.ORDER_ACTIVATION]["breached"] == 2
    assert response.context["drill"]["page_obj"].paginator.count == 2
    met = client.get("/sla/", {"flow": FlowType.ORDER_ACTIVATION, "sla": "met", "days": 1}).context["drill"]["page_obj"]
    assert met.paginator.count == 1


def test_executives_see_documents_without_trace_links_they_could_not_open(client, executive, finance):
    FlowRunFactory(status=FlowRun.Status.RUNNING, document_number="ORD-4242")
    client.force_login(executive)
    assert "/traces/" not in client.get("/orders/").content.decode()
    client.force_login(finance)
    assert "/traces/" in client.get("/orders/").content.decode()


def test_money_is_always_shown_with_its_currency(client, executive):
    FlowRunFactory(status=FlowRun.Status.RUNNING, document_number="ORD-EUR", amount=12345, currency="EUR")
    client.force_login(executive)
    html = client.get("/orders/").content.decode()
    assert "EUR 12,345.00" in html


def test_charts_reach_the_browser_in_plotly_js_spelling():
    """Pages send figures unvalidated, so plotly-python's marker_color must already be
    {"marker": {"color": …}}; real names with "_" (paper_bgcolor) stay as they are."""
    from monitoring.dashboards import charts

    fig = charts.FigureSpec()
    fig.add_bar(x=[1], y=[2], marker_color="#dbe7f3", error_y={"type": "data", "array": [1]})
    fig.update_layout(yaxis_title="n", paper_bgcolor="#fff")
    assert fig.data[0]["marker"] == {"color": "#dbe7f3"} and "marker_color" not in fig.data[0] and "error_y" in fig.data[0]
    assert fig.layout == {"yaxis": {"title": "n"}, "paper_bgcolor": "#fff"}
    charts._check_plain({"data": fig.data, "layout": fig.layout})
    with pytest.raises(ValueError, match="marker_color"):
        charts._check_plain({"data": [{"type": "bar", "marker_color": "red"}]})


def test_a_long_flow_list_counts_to_the_cap_and_says_so(client, executive, monkeypatch):
    import re

    from monitoring.pages import CappedPaginator

    def table(page: int) -> tuple[str, int]:
        html = client.get(f"/orders/?page={page}", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="table").content.decode()
        pager = re.sub(r"<[^>]+>|\s+", " ", re.search(r'<nav class="pager".*?</nav>', html, re.S).group(0))
        return " ".join(pager.split()), html.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")

    monkeypatch.setattr(CappedPaginator, "cap", 30)
    now = timezone.now()
    FlowRunFactory.create_batch(
        31,
        flow_type=FlowType.ORDER_ACTIVATION,
        business_started_at=now - timedelta(hours=2),
        business_completed_at=now - timedelta(hours=1),
        finished_at=now - timedelta(hours=1),
    )
    client.force_login(executive)
    pager, rows = table(2)
    assert rows == 5 and pager.startswith("26–30 of 30+ (narrow the dates for an exact count)") and "Page 2 of 2+" in pager
    FlowRun.objects.filter(pk=FlowRun.objects.order_by("pk").values_list("pk", flat=True).first()).delete()  # 30 rows: exact again
    pager, rows = table(2)
    assert rows == 5 and pager.startswith("26–30 of 30 ") and "narrow" not in pager and "Page 2 of 2 " in pager + " "
