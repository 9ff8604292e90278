"""Monitoring services: chart building and the dispatch of queue actions."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connection
from django.http import QueryDict

import plotly.graph_objects as go

from sync import services as sync_services
from sync.models import FlowRun, FlowType

from .selectors.kpis import Window

# Okabe–Ito: distinguishable with the common forms of colour blindness
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def _figure_html(fig: go.Figure, *, height: int = 300) -> str:
    fig.update_layout(
        height=height, margin={"l": 50, "r": 20, "t": 30, "b": 40}, colorway=PALETTE,
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="#ffffff", font={"family": "system-ui, sans-serif", "size": 12},
        legend={"orientation": "h", "y": -0.2}, hovermode="x unified",
    )
    fig.update_xaxes(gridcolor="#eef1f5")
    fig.update_yaxes(gridcolor="#eef1f5", rangemode="tozero")
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def daily_percentiles(flow_type: str, window: Window) -> list[dict]:
    """Per day: count, p50, p90 of business duration for completed flows (set-based)."""
    extra, params = window.flow_filter_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT date_trunc('day', f.business_completed_at) AS day, count(*) AS n,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.business_completed_at - f.business_started_at)) AS p50,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM f.business_completed_at - f.business_started_at)) AS p90
            FROM {FlowRun._meta.db_table} f
            WHERE f.flow_type = %s AND f.business_completed_at >= %s AND f.business_completed_at < %s {extra}
            GROUP BY 1 ORDER BY 1
            """,
            [flow_type, window.start, window.end, *params],
        )
        return [{"day": r[0], "n": r[1], "p50": r[2], "p90": r[3]} for r in cursor.fetchall()]


def _percentile_chart(rows: list[dict], title_unit: str = "minutes") -> str | None:
    if not rows:
        return None
    days = [r["day"] for r in rows]
    fig = go.Figure()
    fig.add_scatter(x=days, y=[round(r["p50"] / 60, 1) for r in rows], name=f"p50 ({title_unit})", mode="lines+markers")
    fig.add_scatter(x=days, y=[round(r["p90"] / 60, 1) for r in rows], name=f"p90 ({title_unit})", mode="lines+markers")
    fig.add_bar(x=days, y=[r["n"] for r in rows], name="completed", yaxis="y2", opacity=0.25, marker_color="#56B4E9")
    fig.update_layout(yaxis={"title": title_unit}, yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": "count"})
    return _figure_html(fig)


def cycle_time_chart(window: Window) -> str | None:
    return _percentile_chart(daily_percentiles(FlowType.ORDER_ACTIVATION, window))


def invoice_lag_chart(window: Window) -> str | None:
    return _percentile_chart(daily_percentiles(FlowType.INVOICE_POSTING, window))


def overview_trend_chart(window: Window) -> str | None:
    """Daily flows started vs. flows that raised an exception, across all flow types."""
    extra, params = window.flow_filter_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT date_trunc('day', f.business_started_at) AS day, count(*) AS started,
                   count(*) FILTER (WHERE f.status = 'completed') AS completed,
                   count(*) FILTER (WHERE f.had_exception) AS with_exception
            FROM {FlowRun._meta.db_table} f
            WHERE f.business_started_at >= %s AND f.business_started_at < %s {extra}
            GROUP BY 1 ORDER BY 1
            """,
            [window.start, window.end, *params],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    fig = go.Figure()
    fig.add_bar(x=[r[0] for r in rows], y=[r[2] for r in rows], name="completed")
    fig.add_bar(x=[r[0] for r in rows], y=[r[3] for r in rows], name="raised an exception")
    fig.add_scatter(x=[r[0] for r in rows], y=[r[1] for r in rows], name="started", mode="lines")
    fig.update_layout(barmode="group")
    return _figure_html(fig)


def exception_act(*, exception_id: int, action: str, user, data: QueryDict):
    handlers = {
        "retry": lambda: sync_services.exception_retry(exception_id=exception_id, user=user),
        "resolve": lambda: sync_services.exception_resolve(exception_id=exception_id, user=user, note=data.get("note", "")),
        "ignore": lambda: sync_services.exception_ignore(exception_id=exception_id, user=user, reason=data.get("reason", "")),
        "assign": lambda: sync_services.exception_assign(exception_id=exception_id, user=user, assignee_username=data.get("assignee", "")),
        "comment": lambda: sync_services.exception_comment(exception_id=exception_id, user=user, text=data.get("text", "")),
    }
    if action not in handlers:
        raise ValidationError({"action": f"Unknown action {action!r}."})
    return handlers[action]()
