"""Pages. Thin: parse the request, call a selector or service, render.

Each page is one template; its swappable regions are named partials, rendered alone
when the request comes from htmx (`page.html#table`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from sync.models import ConnectorState, FlowRun, FlowType, OwnershipRule, ReconciliationRun

from . import services
from .selectors import kpis
from .selectors import lists

PAGE_SIZE = 25


def portal_page(perm: str):
    """Login required, then the permission, else 403 (never a redirect loop to login)."""

    def decorate(view):
        return login_required(permission_required(perm, raise_exception=True)(view))

    return decorate


def _parse_when(value: str, *, end: bool = False) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            return None
        parsed = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
    return parsed


def window_from(request: HttpRequest) -> kpis.Window:
    """?start=&end= (dates or ISO datetimes, end inclusive for dates) or ?days=N; default 30 days."""
    entity = request.GET.get("entity", "").strip()
    currency = request.GET.get("currency", "").strip().upper()
    start, end = _parse_when(request.GET.get("start", "")), _parse_when(request.GET.get("end", ""), end=True)
    if start and end and start < end:
        return kpis.Window(start, end, entity, currency)
    try:
        days = max(1, min(int(request.GET.get("days", 30)), 3660))
    except ValueError:
        days = 30
    return kpis.Window.last_days(days, entity=entity, currency=currency)


def _page(request: HttpRequest, queryset):
    paginator = Paginator(queryset, PAGE_SIZE)
    return paginator.get_page(request.GET.get("page"))


def _render(request: HttpRequest, template: str, context: dict, partial: str = "table") -> HttpResponse:
    if request.htmx and not request.htmx.boosted:
        return render(request, f"{template}#{partial}", context)
    return render(request, template, context)


@portal_page("monitoring.view_kpis")
def overview(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    summary = kpis.kpi_summary(window)
    previous = kpis.kpi_summary(window.previous())
    context = {
        "page_title": "Overview",
        "window": window,
        "k": summary,
        "prev": previous,
        "entities": lists.legal_entities(),
        "trend_chart": services.overview_trend_chart(window),
    }
    return _render(request, "monitoring/overview.html", context, "kpis")


def _flow_page(request: HttpRequest, *, flow_types: list[str], template: str, title: str, extra: dict) -> HttpResponse:
    filters = lists.FlowFilters.from_request(request.GET)
    context = {
        "page_title": title,
        "filters": filters,
        "page_obj": _page(request, lists.flow_runs(flow_types=flow_types, filters=filters)),
        "statuses": FlowRun.Status.choices,
        "entities": lists.legal_entities(),
        **extra,
    }
    return _render(request, template, context)


@portal_page("monitoring.view_kpis")
def orders(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    return _flow_page(
        request,
        flow_types=[FlowType.ORDER_ACTIVATION],
        template="monitoring/orders.html",
        title="Orders",
        extra={"window": window, "cycle": kpis.order_cycle_time(window), "chart": services.cycle_time_chart(window)},
    )


@portal_page("monitoring.view_kpis")
def amendments(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    return _flow_page(
        request,
        flow_types=[FlowType.AMENDMENT, FlowType.RENEWAL, FlowType.CANCELLATION],
        template="monitoring/amendments.html",
        title="Amendments & renewals",
        extra={"window": window, "amend": kpis.amendments(window), "renewal": kpis.renewal_accuracy(window)},
    )


@portal_page("monitoring.view_kpis")
def invoices(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    return _flow_page(
        request,
        flow_types=[FlowType.INVOICE_POSTING, FlowType.PAYMENT_STATUS, FlowType.CREDIT_MEMO],
        template="monitoring/invoices.html",
        title="Invoices",
        extra={"window": window, "lag": kpis.invoice_sync_lag(window), "chart": services.invoice_lag_chart(window)},
    )


@portal_page("monitoring.view_kpis")
def sla(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    context = {
        "page_title": "SLA",
        "window": window,
        "sla": kpis.sla(window),
        "flow_labels": dict(FlowType.choices),
        "breaches": lists.sla_breaches(limit=50),
        "can_manage": request.user.has_perm("monitoring.manage_sla"),
    }
    return render(request, "monitoring/sla.html", context)


@portal_page("monitoring.view_reconciliation")
def reconciliation(request: HttpRequest) -> HttpResponse:
    run = ReconciliationRun.objects.order_by("-started_at").first()
    breaks = run.breaks.order_by("-value_reporting") if run else []
    context = {"page_title": "Reconciliation", "run": run, "page_obj": _page(request, breaks) if run else None}
    return _render(request, "monitoring/reconciliation.html", context)


@portal_page("monitoring.view_traces")
def traces(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    found = lists.trace_search(q) if q else None
    context = {"page_title": "Traces", "q": q, "page_obj": _page(request, found) if found is not None else None}
    return _render(request, "monitoring/traces.html", context)


@portal_page("monitoring.view_traces")
def trace_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(FlowRun, pk=pk)
    context = {"page_title": f"Trace {run.document_number or run.pk}", "run": run, **lists.trace(run)}
    return render(request, "monitoring/trace_detail.html", context)


@portal_page("monitoring.view_connectors")
def connectors(request: HttpRequest) -> HttpResponse:
    context = {
        "page_title": "Connectors",
        "states": lists.connector_health(),
        "ownership": OwnershipRule.objects.all(),
        "circuit": ConnectorState.Circuit,
    }
    return render(request, "monitoring/connectors.html", context)
