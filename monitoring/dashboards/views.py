"""The dashboards: Overview, Orders, Amendments, Invoices, and the Connectors, Reconciliation
and Traces pages. Thin: parse the request, call the KPI selectors, build the charts, render.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode

from monitoring.kpis import amendments as amendment_kpis
from monitoring.kpis import coverage
from monitoring.kpis import exceptions as exception_kpis
from monitoring.kpis import flows as flow_kpis
from monitoring.kpis import invoices as invoice_kpis
from monitoring.kpis import money as money_kpis
from monitoring.kpis import orders as order_kpis
from monitoring.kpis import sla as sla_kpis
from monitoring.kpis.summary import kpi_previous_basis, kpi_trend_basis
from monitoring.kpis.window import Window
from monitoring.live import selectors as live
from monitoring.pages import PAGE_SIZE, CappedPaginator, paginate, portal_page, render_dashboard, render_region
from sync.models import ConnectorState, FlowRun, FlowType, OwnershipRule

from . import charts, deals, reconciliation, selectors, tiles
from .context import kpi_context, window_choice, window_from, window_query
from .filters import FlowRunFilterSet
from .invoice_list import STATES as INVOICE_STATES
from .invoice_list import InvoiceFilterSet


@portal_page("monitoring.view_kpis")
def overview(request: HttpRequest) -> HttpResponse:
    """Tiles and money first; the daily trends arrive as their own request (`?part=trends`,
    loaded by htmx as soon as the page is shown), so neither waits for the other and the
    60-second tile refresh computes only the tiles."""
    window = window_from(request)
    previous_window, since = window.previous(), coverage.data_since()
    compared = coverage.comparable(previous_window, since)  # only a previous window the hub holds data for
    context = {
        **kpi_context(request, window, "Overview"),
        "previous_window": previous_window,
        "compared": compared,
        "data_since": since,
        "trend_titles": charts.TREND_TITLES,
    }
    if request.GET.get("part") == "trends":
        return render(request, "monitoring/overview.html#trends", {**context, "trends": charts.overview_trends(window)})
    current = kpi_trend_basis(window)
    previous = kpi_previous_basis(previous_window) if compared else None
    context.update(
        k=current,
        prev=previous,
        tiles=tiles.overview_tiles(current, previous, qs=window_query(request), window=window, previous_window=previous_window, data_since=since),
    )
    if request.htmx and request.htmx.target == "kpis":
        return render(request, "monitoring/overview.html#kpis", context)
    close = money_kpis.close_readiness(window)
    context.update(
        revenue_at_risk=money_kpis.revenue_at_risk(window),
        in_flight=money_kpis.dollars_in_flight(window),
        arr=money_kpis.arr(window),
        unbilled=money_kpis.unbilled_arr(window),
        close=close,
        close_links=close_links(close, window),
        unconverted=money_kpis.unconverted(window),
        exception_ages=exception_kpis.exception_age_buckets(window),
        recon=reconciliation.overview_summary(),  # figures a run produced, or "no run yet"
    )
    return render_dashboard(request, "monitoring/overview.html", context)


def close_links(close: dict, window: Window) -> dict:
    """The rows behind each close-readiness count: the same month, the same definition."""
    month = urlencode({"start": close["period_start"].isoformat(), "end": close["period_end"].isoformat(), "basis": "started", "status": "in_flight"})
    scope = "".join(f"&{k}={v}" for k, v in (("entity", window.entity), ("currency", window.currency)) if v)
    return {
        "invoices": f"{reverse('monitoring:invoices')}?flow=invoice_posting&{month}{scope}#flows",
        "payments": f"{reverse('monitoring:invoices')}?flow=payment_status&payment=received&{month}{scope}#flows",
        "breaks": f"{reverse('monitoring:exceptions')}?error_class=reconciliation&month={close['period_start']:%Y-%m}",
    }


def _flow_page(request: HttpRequest, *, flow_types: list[str], template: str, title: str, extra: dict, window: Window) -> HttpResponse:
    params = request.GET.copy()
    for name in window_choice(request).errors:  # a window parameter the page could not use narrows nothing
        params.pop(name, None)
    filters = FlowRunFilterSet(params, flow_types=flow_types, window=window, request=request)
    context = {
        **kpi_context(request, window, title),
        "filters": filters,
        "page_obj": paginate(request, filters.qs),
        "statuses": FlowRun.Status.choices,
        "flow_choices": [(t, FlowType(t).label) for t in flow_types] if len(flow_types) > 1 else [],
        **extra,
    }
    return render_dashboard(request, template, context)


def _wants_dashboard(request: HttpRequest) -> bool:
    """An htmx request for the flow table alone skips the charts' queries."""
    return not (request.htmx and request.htmx.target == "table")


@portal_page("monitoring.view_kpis")
def orders(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    extra = {}
    if _wants_dashboard(request):
        histogram = charts.label_buckets(flow_kpis.duration_histogram(FlowType.ORDER_ACTIVATION, window, flow_kpis.CYCLE_BUCKETS))
        extra = {
            "cycle": order_kpis.order_cycle_time(window),
            "chart": charts.cycle_time_chart(window),
            "histogram": histogram,
            "histogram_chart": charts.histogram_figure(histogram, finished_label="activated orders"),
            "in_flight": flow_kpis.in_flight([FlowType.ORDER_ACTIVATION], window),
            "slowest": order_kpis.slowest_orders(window),
            "by_entity": order_kpis.cycle_time_by_entity(window),
            "sla_target": sla_kpis.sla(window, [FlowType.ORDER_ACTIVATION]).get(FlowType.ORDER_ACTIVATION),
        }
    return _flow_page(request, flow_types=[FlowType.ORDER_ACTIVATION], template="monitoring/orders.html", title="Orders", extra=extra, window=window)


AMENDMENT_TYPES = [FlowType.AMENDMENT, FlowType.RENEWAL, FlowType.CANCELLATION]


@portal_page("monitoring.view_kpis")
def amendments(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    extra = {}
    if _wants_dashboard(request):
        flow = request.GET.get("flow", "")
        chart_types = [flow] if flow in AMENDMENT_TYPES else AMENDMENT_TYPES
        outcomes = amendment_kpis.daily_outcomes(chart_types, window)
        extra = {
            "amend": amendment_kpis.amendments(window),
            "renewal": amendment_kpis.renewal_accuracy(window),
            "outcomes": outcomes,
            "outcomes_chart": charts.outcomes_chart(outcomes),
            "reasons": amendment_kpis.failure_reasons(AMENDMENT_TYPES, window),
            "stuck": flow_kpis.in_flight(AMENDMENT_TYPES, window),
            "chart_flow": FlowType(flow).label if flow in AMENDMENT_TYPES else "",
        }
    return _flow_page(request, flow_types=AMENDMENT_TYPES, template="monitoring/amendments.html", title="Amendments & renewals", extra=extra, window=window)


INVOICE_TYPES = [FlowType.INVOICE_POSTING, FlowType.PAYMENT_STATUS, FlowType.CREDIT_MEMO]


@portal_page("monitoring.view_kpis")
def invoices(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    extra = {}
    if _wants_dashboard(request):
        histogram = charts.label_buckets(flow_kpis.duration_histogram(FlowType.INVOICE_POSTING, window, flow_kpis.LAG_BUCKETS, include_unfinished=True))
        unposted = invoice_kpis.unposted_by_age(window)
        extra = {
            "lag": invoice_kpis.invoice_sync_lag(window),
            "chart": charts.invoice_lag_chart(window),
            "histogram": histogram,
            "histogram_chart": charts.histogram_figure(histogram, finished_label="posted", unfinished_label="not posted yet (age)"),
            "unposted": unposted,
            "unposted_chart": charts.unposted_chart(unposted, settings.REPORTING_CURRENCY),
            "by_entity": invoice_kpis.invoice_lag_by_entity(window),
        }
        close = money_kpis.close_readiness(window)
        documents = InvoiceFilterSet(request.GET, window=window, request=request)
        extra.update(
            close=close,
            close_links=close_links(close, window),
            payments=money_kpis.payment_states(window),
            unconverted=money_kpis.unconverted(window),
            documents=documents,
            documents_page=CappedPaginator(documents.qs, PAGE_SIZE).get_page(request.GET.get("ipage")),
            invoice_states=INVOICE_STATES,
        )
    if request.htmx and request.htmx.target == "documents":
        return render(request, "monitoring/invoices.html#documents", {**kpi_context(request, window, "Invoices"), **extra})
    return _flow_page(request, flow_types=INVOICE_TYPES, template="monitoring/invoices.html", title="Invoices", extra=extra, window=window)


@portal_page("monitoring.view_connectors")
def connectors(request: HttpRequest) -> HttpResponse:
    try:
        hours = max(1, min(int(request.GET.get("hours", 1)), 168))
    except ValueError:
        hours = 1
    context = {
        "page_title": "Connectors",
        "hours": hours,
        "ranges": [(1, "1 h"), (6, "6 h"), (24, "24 h"), (168, "7 days")],
        "states": selectors.connector_health(hours),
        "waiting": live.waiting_steps(),
        "chart": charts.connector_chart(selectors.connector_series(hours)),
        "ownership": OwnershipRule.objects.all(),
        "circuit": ConnectorState.Circuit,
    }
    return render_dashboard(request, "monitoring/connectors.html", context)


@portal_page("monitoring.view_traces")
def traces(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    found = selectors.trace_search(q) if q else None
    context = {"page_title": "Traces", "q": q, "page_obj": paginate(request, found) if found is not None else None}
    return render_region(request, "monitoring/traces.html", context)


@portal_page("monitoring.view_traces")
def trace_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(FlowRun, pk=pk)
    story = selectors.trace(run)
    story["steps"] = [live.with_attempts(step, run.flow_type) for step in story["steps"]]  # next attempt, attempts left
    context = {"page_title": f"Trace {run.document_number or run.pk}", "run": run, **story}
    return render(request, "monitoring/trace_detail.html", context)


@portal_page("monitoring.view_kpis")  # who may see Orders may see a deal
def deal_detail(request: HttpRequest, deal_id: str) -> HttpResponse:
    """One deal's whole story: its flows in time order, its lifecycle, money and open exceptions."""
    story = deals.deal_story(deal_id)
    if story is None:
        context = {"page_title": f"Deal {deal_id}", "deal_id": deal_id, "missing": True}
        return render(request, "monitoring/deal_detail.html", context, status=404)
    context = {"page_title": f"Deal {deal_id}", **story}
    return render(request, "monitoring/deal_detail.html", context)
