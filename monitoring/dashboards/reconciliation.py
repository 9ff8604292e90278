"""The Reconciliation screen: runs (status, duration, records per system, breaks by type, value,
match rate), "Run now" with live progress (htmx polling), the breaks trend over runs, ageing
buckets in count and amount, the drill-down list with each system's side by side (filters,
pagination, CSV). Every figure comes from a ReconciliationRun and its breaks — nothing else."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from monitoring.exceptions.export import text
from monitoring.pages import paginate, portal_page, render_region
from q2c_portal.celery import RECONCILE_EVERY_SECONDS
from sync.models import ReconciliationBreak, ReconciliationRun
from sync.reconciliation.api import break_age_days, filtered_breaks
from sync.reconciliation.runs import AlreadyRunning, request_run

from .charts import BLUE, ORANGE, PALETTE, FigureSpec, _figure_html

VIEW, RUN = "monitoring.view_reconciliation", "sync.act_on_exception"
AGE_BUCKETS = [("0–30 days", 0, 30), ("31–60 days", 31, 60), ("61–90 days", 61, 90), ("over 90 days", 91, None)]
TREND_RUNS = 30
BT = ReconciliationBreak.BreakType


def latest_run(*, finished: bool = True) -> ReconciliationRun | None:
    qs = ReconciliationRun.objects.select_related("rule_set")
    if finished:
        qs = qs.filter(status=ReconciliationRun.Status.SUCCEEDED)
    return qs.order_by("-started_at", "-id").first()


def overview_summary() -> dict | None:
    """The Overview's reconciliation figures: the latest successful run's, or None (no run yet)."""
    run = latest_run()
    if run is None:
        return None
    return {"run": run, "breaks": run.breaks_found, "value": run.breaks_value, "match_rate": run.match_rate, "at": run.finished_at}


def ageing(run: ReconciliationRun) -> list[dict]:
    """Breaks by age (the document's date, else when a run first found it) in count and amount."""
    table = ReconciliationBreak._meta.db_table
    at = (run.began_at or run.started_at).date()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT GREATEST(0, COALESCE(%s::date - document_date, %s::date - first_seen::date, 0)) AS age, count(*), COALESCE(sum(value_reporting), 0)
                FROM {table} WHERE run_id = %s GROUP BY 1""",
            [at, at, run.pk],
        )
        rows = cursor.fetchall()
    out = [{"label": label, "n": 0, "amount": Decimal(0)} for label, *_ in AGE_BUCKETS]
    for age, n, amount in rows:
        for bucket, (_label, low, high) in zip(out, AGE_BUCKETS, strict=True):
            if age >= low and (high is None or age <= high):
                bucket["n"] += n
                bucket["amount"] += amount
                break
    return out


def trend_chart(runs: list[ReconciliationRun]) -> str | None:
    runs = [r for r in runs if r.status == ReconciliationRun.Status.SUCCEEDED][::-1]
    if not runs:
        return None
    x = [f"#{r.pk} {timezone.localtime(r.started_at):%b %d %H:%M}" for r in runs]
    fig = FigureSpec()
    for i, (kind, label) in enumerate(BT.choices):
        y = [int((r.breaks_by_type.get(kind) or {}).get("count") or 0) for r in runs]
        if any(y):
            fig.add_bar(x=x, y=y, name=label, marker={"color": PALETTE[i % len(PALETTE)]}, hovertemplate="%{y:,}<extra>" + label + "</extra>")
    fig.add_scatter(
        x=x,
        y=[float(r.match_rate) if r.match_rate is not None else None for r in runs],
        name="match rate %",
        yaxis="y2",
        mode="lines+markers",
        line={"color": "#0f172a", "width": 2},
        hovertemplate="%{y:.1f} %<extra>match rate</extra>",
    )
    fig.update_layout(
        barmode="stack",
        xaxis={"type": "category", "title": "run"},
        yaxis={"title": "breaks"},
        yaxis2={"title": "match rate %", "overlaying": "y", "side": "right", "range": [0, 100], "showgrid": False},
    )
    return _figure_html(fig, height=280)


def ageing_chart(rows: list[dict], currency: str) -> str | None:
    if not any(r["n"] for r in rows):
        return None
    fig = FigureSpec()
    labels = [r["label"] for r in rows]
    fig.add_bar(x=labels, y=[r["n"] for r in rows], name="breaks", marker={"color": BLUE}, hovertemplate="%{y:,} breaks<extra></extra>")
    fig.add_bar(
        x=labels,
        y=[float(r["amount"]) for r in rows],
        name=f"value ({currency})",
        yaxis="y2",
        marker={"color": ORANGE},
        hovertemplate=currency + " %{y:,.2f}<extra></extra>",
    )
    fig.update_layout(
        barmode="group",
        xaxis={"type": "category", "title": "age"},
        yaxis={"title": "breaks"},
        yaxis2={"title": currency, "overlaying": "y", "side": "right", "showgrid": False, "tickformat": ",.0f"},
    )
    return _figure_html(fig, height=240, unified=False)


def _every() -> str:
    seconds = int(RECONCILE_EVERY_SECONDS)
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _by_type(run: ReconciliationRun) -> list[dict]:
    return [
        {
            "type": kind,
            "label": label,
            "count": int((run.breaks_by_type.get(kind) or {}).get("count") or 0),
            "value": Decimal((run.breaks_by_type.get(kind) or {}).get("value") or 0),
        }
        for kind, label in BT.choices
    ]


def _rows(page) -> list[dict]:
    out = []
    for b in page:
        sides = {}
        for role in ("crm", "billing", "erp"):
            found = [v for k, v in (b.sides or {}).items() if k == role or k.startswith(f"{role}#")]
            sides[role] = found
        out.append({"b": b, "sides": sides, "age": break_age_days(b)})
    return out


@portal_page(VIEW)
def reconciliation(request: HttpRequest) -> HttpResponse:
    if request.GET.get("format") == "csv":
        return export(request)
    active = ReconciliationRun.objects.filter(status__in=ReconciliationRun.ACTIVE_STATUSES).order_by("-started_at").first()
    if request.GET.get("part") == "progress":
        return progress(request, active)
    runs = list(ReconciliationRun.objects.select_related("rule_set", "requested_by").order_by("-started_at", "-id")[:TREND_RUNS])
    selected = None
    if request.GET.get("run", "").isdigit():
        selected = ReconciliationRun.objects.select_related("rule_set").filter(pk=int(request.GET["run"])).first()
    selected = selected or latest_run() or (runs[0] if runs else None)
    context = {
        "page_title": "Reconciliation",
        "runs": runs[:10],
        "active": active,
        "run": selected,
        "can_run": request.user.has_perm(RUN),
        "reporting_currency": settings.REPORTING_CURRENCY,
        "break_types": BT.choices,
        "every": _every(),
        "f": {k: request.GET.get(k, "") for k in ("break_type", "document_type", "system", "q", "review")},
    }
    if selected is not None:
        qs, _errors = filtered_breaks(selected, request.GET)
        page_obj = paginate(request, qs)
        context.update(page_obj=page_obj, rows=_rows(page_obj), by_type=_by_type(selected))
        if not (request.htmx and request.htmx.target == "table"):
            buckets = ageing(selected)
            context.update(ageing=buckets, ageing_chart=ageing_chart(buckets, settings.REPORTING_CURRENCY), trend=trend_chart(runs))
    return render_region(request, "monitoring/reconciliation.html", context)


def progress(request: HttpRequest, active: ReconciliationRun | None) -> HttpResponse:
    """The live progress card (htmx polls it every 2 s). When the run it followed has finished,
    the page reloads once (HX-Refresh) to show the new figures."""
    following = request.GET.get("following", "")
    if active is None and following:
        response = HttpResponse("")
        response["HX-Refresh"] = "true"
        return response
    return render(request, "monitoring/reconciliation.html#progress", {"active": active})


@login_required
@require_POST
def run_now(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(RUN):
        return HttpResponse("Your role may not start a reconciliation run.", status=403)
    try:
        active = request_run(trigger=ReconciliationRun.Trigger.SCREEN, user=request.user)
    except AlreadyRunning as exc:
        active = exc.run
    if request.htmx:
        return render(request, "monitoring/reconciliation.html#progress", {"active": active})
    return redirect(reverse("monitoring:reconciliation"))


HEADER = [
    "run",
    "break_type",
    "document_type",
    "document_number",
    "deal_id",
    "account",
    "system",
    "rule",
    "currency",
    "crm_value",
    "billing_value",
    "erp_value",
    "difference",
    "difference_reporting",
    "value_reporting",
    "reporting_currency",
    "document_date",
    "age_days",
    "first_seen",
    "needs_review",
    "suggested_match",
    "exception_url",
    "deal_url",
]


class _Echo:
    def write(self, value):
        return value


def _csv(qs, base: str) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    for b in qs.iterator(chunk_size=1000):
        yield writer.writerow(
            [
                b.run_id,
                b.break_type,
                b.document_type,
                text(b.document_number),
                text(b.deal_id),
                text(b.account_name),
                b.system,
                text(b.rule),
                b.currency,
                b.crm_value if b.crm_value is not None else "",
                b.billing_value if b.billing_value is not None else "",
                b.erp_value if b.erp_value is not None else "",
                b.difference if b.difference is not None else "",
                b.difference_reporting,
                b.value_reporting,
                settings.REPORTING_CURRENCY,
                b.document_date or "",
                break_age_days(b) if break_age_days(b) is not None else "",
                b.first_seen.isoformat() if b.first_seen else "",
                "yes" if b.needs_review else "",
                text((b.suggestion or {}).get("document_number", "")),
                f"{base}{reverse('monitoring:exception_detail', args=[b.exception_id])}" if b.exception_id else "",
                f"{base}{reverse('monitoring:deal_detail', args=[b.deal_id])}" if b.deal_id else "",
            ]
        )


def export(request: HttpRequest) -> HttpResponse:
    run = ReconciliationRun.objects.filter(pk=int(request.GET["run"])).first() if request.GET.get("run", "").isdigit() else latest_run()
    if run is None:
        return HttpResponse("No reconciliation has run yet.", status=404, content_type="text/plain")
    qs, _errors = filtered_breaks(run, request.GET)
    response = StreamingHttpResponse(_csv(qs, request.build_absolute_uri("/")[:-1]), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="reconciliation-run-{run.pk}.csv"'
    return response
