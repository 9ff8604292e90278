"""Pages. Thin: parse the request, call a selector or service, render.

Each page is one template; its swappable regions are named partials, rendered alone
when the request comes from htmx (`page.html#table`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from sync.models import ConnectorState, FlowRun, FlowType, OwnershipRule, ReconciliationRun

from monitoring.kpis import amendments as amendment_kpis
from monitoring.kpis import exceptions as exception_kpis
from monitoring.kpis import flows as flow_kpis
from monitoring.kpis import invoices as invoice_kpis
from monitoring.kpis import money as money_kpis
from monitoring.kpis import orders as order_kpis
from monitoring.kpis import sla as sla_kpis
from monitoring.kpis.summary import kpi_previous_basis, kpi_trend_basis
from monitoring.kpis.window import Window

from . import charts as services
from . import selectors as lists

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


def window_from(request: HttpRequest) -> Window:
    """?start=&end= (dates or ISO datetimes, end inclusive for dates) or ?days=N; default 30 days."""
    entity = request.GET.get("entity", "").strip()
    currency = request.GET.get("currency", "").strip().upper()
    start, end = _parse_when(request.GET.get("start", "")), _parse_when(request.GET.get("end", ""), end=True)
    if start and end and start < end:
        return Window(start, end, entity, currency)
    try:
        days = max(1, min(int(request.GET.get("days", 30)), 3660))
    except ValueError:
        days = 30
    return Window.last_days(days, entity=entity, currency=currency)


class CappedPaginator(Paginator):
    """Counts at most `cap` rows: an unfiltered list of a year's orders would otherwise count
    400k rows on every page view. Past the cap the pager says "2,000+" and offers the first
    2,000 rows; narrowing the window or the filters gives exact figures again."""

    cap = 2_000

    @cached_property
    def _counted(self) -> int:
        return self.object_list[: self.cap + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @property
    def capped(self) -> bool:
        return self._counted > self.cap


def _page(request: HttpRequest, queryset):
    paginator = CappedPaginator(queryset, PAGE_SIZE)
    return paginator.get_page(request.GET.get("page"))


def _render(request: HttpRequest, template: str, context: dict, partial: str = "table") -> HttpResponse:
    if request.htmx and not request.htmx.boosted:
        return render(request, f"{template}#{partial}", context)
    return render(request, template, context)


def _render_page(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    """Full page, or for htmx the partial the request targets: the flow table or the dashboard."""
    if request.htmx and not request.htmx.boosted:
        partial = "table" if request.htmx.target == "table" else "dashboard"
        return render(request, f"{template}#{partial}", context)
    return render(request, template, context)


QUICK_RANGES = [("1", "24 h"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days")]
WINDOW_PARAMS = ("start", "end", "days", "entity", "currency")


def window_query(request: HttpRequest) -> str:
    """The window part of the query string, to carry into links to the rows behind a figure."""
    params = request.GET.copy()
    for key in list(params):
        if key not in WINDOW_PARAMS or not params.get(key):
            params.pop(key)
    return params.urlencode()


def _kpi_context(request: HttpRequest, window: Window, title: str) -> dict:
    return {
        "page_title": title, "window": window, "entities": lists.legal_entities(), "quick_ranges": QUICK_RANGES,
        "window_qs": window_query(request),
    }


@portal_page("monitoring.view_kpis")
def overview(request: HttpRequest) -> HttpResponse:
    """Tiles and money first; the daily trends arrive as their own request (`?part=trends`,
    loaded by htmx as soon as the page is shown), so neither waits for the other and the
    60-second tile refresh computes only the tiles."""
    window = window_from(request)
    context = {**_kpi_context(request, window, "Overview"), "previous_window": window.previous(), "trend_titles": services.TREND_TITLES}
    if request.GET.get("part") == "trends":
        return render(request, "monitoring/overview.html#trends", {**context, "trends": services.overview_trends(window)})
    current = kpi_trend_basis(window)
    previous = kpi_previous_basis(window.previous())
    context.update(k=current, prev=previous, tiles=services.overview_tiles(current, previous, qs=window_query(request)))
    if request.htmx and request.htmx.target == "kpis":
        return render(request, "monitoring/overview.html#kpis", context)
    context.update(
        revenue_at_risk=money_kpis.revenue_at_risk(window), in_flight=money_kpis.dollars_in_flight(window), unbilled=money_kpis.unbilled_arr(window),
        close=money_kpis.close_readiness(window), exception_ages=exception_kpis.exception_age_buckets(window),
    )
    return _render_page(request, "monitoring/overview.html", context)


def _flow_page(request: HttpRequest, *, flow_types: list[str], template: str, title: str, extra: dict, window: Window) -> HttpResponse:
    filters = lists.FlowFilters.from_request(request.GET)
    context = {
        **_kpi_context(request, window, title),
        "filters": filters,
        "page_obj": _page(request, lists.flow_runs(flow_types=flow_types, filters=filters, window=window)),
        "statuses": FlowRun.Status.choices,
        "flow_choices": [(t, FlowType(t).label) for t in flow_types] if len(flow_types) > 1 else [],
        **extra,
    }
    return _render_page(request, template, context)


def _wants_dashboard(request: HttpRequest) -> bool:
    """An htmx request for the flow table alone skips the charts' queries."""
    return not (request.htmx and request.htmx.target == "table")


@portal_page("monitoring.view_kpis")
def orders(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    extra = {}
    if _wants_dashboard(request):
        histogram = services.label_buckets(flow_kpis.duration_histogram(FlowType.ORDER_ACTIVATION, window, flow_kpis.CYCLE_BUCKETS))
        extra = {
            "cycle": order_kpis.order_cycle_time(window),
            "chart": services.cycle_time_chart(window),
            "histogram": histogram,
            "histogram_chart": services.histogram_figure(histogram, finished_label="activated orders"),
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
            "outcomes_chart": services.outcomes_chart(outcomes),
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
        histogram = services.label_buckets(flow_kpis.duration_histogram(FlowType.INVOICE_POSTING, window, flow_kpis.LAG_BUCKETS, include_unfinished=True))
        unposted = invoice_kpis.unposted_by_age(window)
        extra = {
            "lag": invoice_kpis.invoice_sync_lag(window),
            "chart": services.invoice_lag_chart(window),
            "histogram": histogram,
            "histogram_chart": services.histogram_figure(histogram, finished_label="posted", unfinished_label="not posted yet (age)"),
            "unposted": unposted,
            "unposted_chart": services.unposted_chart(unposted, settings.REPORTING_CURRENCY),
            "by_entity": invoice_kpis.invoice_lag_by_entity(window),
            "close": money_kpis.close_readiness(window),
        }
    return _flow_page(request, flow_types=INVOICE_TYPES, template="monitoring/invoices.html", title="Invoices", extra=extra, window=window)


FLOW_PAGES = {
    FlowType.ORDER_ACTIVATION: "monitoring:orders",
    FlowType.AMENDMENT: "monitoring:amendments", FlowType.RENEWAL: "monitoring:amendments", FlowType.CANCELLATION: "monitoring:amendments",
    FlowType.INVOICE_POSTING: "monitoring:invoices", FlowType.PAYMENT_STATUS: "monitoring:invoices", FlowType.CREDIT_MEMO: "monitoring:invoices",
}


def _sla_context(request: HttpRequest, window: Window, forms: dict | None = None) -> dict:
    from monitoring.models import SentAlert, SlaHoliday, SlaPolicy
    from monitoring.sla.policies import SlaPolicyForm

    sla_rows = sla_kpis.sla(window)
    can_manage = request.user.has_perm("monitoring.manage_sla")
    policies = list(SlaPolicy.objects.all())
    forms = forms or {}
    flow = request.GET.get("flow", "")
    outcome = request.GET.get("sla", "")
    drill = None
    if outcome in ("due", "met", "breached", "at_risk") and flow in sla_rows:
        filters = lists.FlowFilters.from_request(request.GET)
        drill = {"flow": flow, "label": sla_rows[flow]["label"], "outcome": outcome,
                 "page_obj": _page(request, lists.flow_runs(flow_types=[flow], filters=filters, window=window))}
    return {
        **_kpi_context(request, window, "SLA"),
        "sla": sla_rows,
        "overall": sla_kpis.sla_overall(sla_rows),
        "chart": services.sla_compliance_chart(sla_kpis.daily_sla(window), sla_rows),
        "breaches": lists.sla_breaches(limit=50, entity=window.entity),
        "at_risk": lists.sla_at_risk(limit=50, entity=window.entity, now=window.as_of),
        "can_manage": can_manage,
        "policy_forms": [(p, forms.get(p.pk) or SlaPolicyForm(instance=p, prefix=f"p{p.pk}")) for p in policies] if can_manage else [],
        "policies": policies,
        "holidays": SlaHoliday.objects.filter(date__gte=timezone.localdate() - timedelta(days=7))[:20],
        "recent_alerts": SentAlert.objects.select_related("channel")[:10],
        "drill": drill,
    }


@portal_page("monitoring.view_kpis")
def sla(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    return _render_page(request, "monitoring/sla.html", _sla_context(request, window))


@portal_page("monitoring.manage_sla")
@require_POST
def sla_policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit one SLA policy. The permission is checked here (403), not only hidden in the page."""
    from monitoring.models import SlaPolicy
    from monitoring.sla.policies import SlaPolicyForm, sla_policy_update

    policy = get_object_or_404(SlaPolicy, pk=pk)
    form = SlaPolicyForm(request.POST, instance=SlaPolicy.objects.get(pk=pk), prefix=f"p{pk}")
    if form.is_valid():
        try:
            sla_policy_update(policy_id=policy.pk, user=request.user, data=form.cleaned_data)
        except ValidationError as exc:  # the model's rules (time zone, stricter month-end …), shown on their form field
            names = {"target_seconds": "target_minutes", "month_end_target_seconds": "month_end_minutes"}
            for field, errors in exc.message_dict.items():
                name = names.get(field, field)
                form.add_error(name if name in form.fields else None, errors)
        else:
            messages.success(request, f"{policy.get_flow_type_display()} SLA saved: new flows get the new target; running flows keep their due time.")
            return redirect(reverse("monitoring:sla") + "#policies")
    window = window_from(request)
    return render(request, "monitoring/sla.html", _sla_context(request, window, forms={pk: form}), status=400)


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
        "states": lists.connector_health(hours),
        "chart": services.connector_chart(lists.connector_series(hours)),
        "ownership": OwnershipRule.objects.all(),
        "circuit": ConnectorState.Circuit,
    }
    return _render_page(request, "monitoring/connectors.html", context)


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
