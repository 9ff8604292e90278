"""The dashboards' charts: Plotly figures (sent to the browser as plotly.js reads them), and the
Overview's daily trend per KPI with its table of numbers and links to the rows per day."""

from __future__ import annotations

from datetime import date

import plotly.io
from django.conf import settings
from django.urls import reverse
from django.utils.html import escape

from monitoring.formatting import duration as human_duration
from monitoring.formatting import short_span
from monitoring.kpis import amendments as amendment_kpis
from monitoring.kpis import exceptions as exception_kpis
from monitoring.kpis import invoices as invoice_kpis
from monitoring.kpis import orders as order_kpis
from monitoring.kpis import sla as sla_kpis
from monitoring.kpis.window import Window
from sync.models import FlowType

# Okabe–Ito: distinguishable with the common forms of colour blindness
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY, YELLOW, BLACK = PALETTE


class FigureSpec:
    """The part of plotly's Figure API the charts use, collected as plain dicts.

    Building through `go.Figure().add_bar(...)` validates every property on every call
    (~100 ms per chart); the dict is validated once when PLOTLY_VALIDATE is on (tests) and
    rendered as it is otherwise. The chart code reads the same either way."""

    def __init__(self):
        self.data: list[dict] = []
        self.layout: dict = {}

    def add_bar(self, **trace) -> None:
        self.data.append(_expand({"type": "bar", **trace}))

    def add_scatter(self, **trace) -> None:
        self.data.append(_expand({"type": "scatter", **trace}))

    def update_layout(self, **changes) -> None:
        _merge(self.layout, _expand(changes))

    def add_hline(self, *, y: float, line: dict, annotation_text: str = "", annotation_position: str = "bottom right") -> None:
        self.layout.setdefault("shapes", []).append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y, "line": line})
        if annotation_text:
            self.layout.setdefault("annotations", []).append(
                {
                    "xref": "paper",
                    "x": 1,
                    "xanchor": "right",
                    "yref": "y",
                    "y": y,
                    "yanchor": "top",
                    "text": annotation_text,
                    "showarrow": False,
                    "font": {"size": 11, "color": "#64748b"},
                }
            )


PLOTLY_UNDERSCORE_NAMES = {"error_x", "error_y", "copy_ystyle", "paper_bgcolor", "plot_bgcolor"}  # real plotly.js names with "_" (bar, scatter, layout)


def _expand(spec: dict) -> dict:
    """Plotly-python's "magic underscores" (marker_color=…) as the nested dicts plotly.js reads
    ({"marker": {"color": …}}): the browser gets the figure unvalidated, so nothing may rely on
    plotly-python rewriting it."""
    out: dict = {}
    for key, value in spec.items():
        if "_" in key and key not in PLOTLY_UNDERSCORE_NAMES:
            head, rest = key.split("_", 1)
            _merge(out, {head: _expand({rest: value})})
        else:
            _merge(out, {key: _expand(value) if isinstance(value, dict) else value})
    return out


def _merge(target: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
    return target


def _figure_html(fig: FigureSpec, *, height: int = 300, unified: bool = True) -> str:
    layout = {
        "height": height,
        "margin": {"l": 56, "r": 16, "t": 12, "b": 36},
        "colorway": PALETTE,
        "template": {},  # no template: plotly.js defaults + the layout below
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "#ffffff",
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#334155"},
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
        "hovermode": "x unified" if unified else "closest",
        "bargap": 0.25,
        "hoverlabel": {"bgcolor": "#0f172a", "font": {"color": "#f8fafc"}},
    }
    layout = _merge(layout, fig.layout)
    for axis in {"xaxis", "yaxis", *(k for k in layout if k.startswith(("xaxis", "yaxis")))}:
        spec = layout.setdefault(axis, {})
        spec.setdefault("gridcolor", "#eef1f5")
        spec.setdefault("zeroline", False)
        spec.setdefault("automargin", True)
        if axis.startswith("x"):
            spec.setdefault("linecolor", "#cbd5e1")
        elif spec.get("type") != "log" and "range" not in spec:
            spec.setdefault("rangemode", "tozero")
    # Validating a figure against plotly's schema costs ~18 ms; the tests validate every chart
    # (tests/settings.py: PLOTLY_VALIDATE), production renders the same dict without re-checking it.
    if settings.PLOTLY_VALIDATE:
        _check_plain({"data": fig.data, "layout": layout})
    # No inline <script> (the Content-Security-Policy allows none): the figure travels as data and
    # static/js/portal.js draws every .q2c-chart with Plotly.newPlot, also after htmx swaps.
    figure = plotly.io.to_json({"data": fig.data, "layout": layout}, validate=settings.PLOTLY_VALIDATE)
    return f'<div class="q2c-chart" data-plotly="{escape(figure)}"></div>'


def _check_plain(value, path: str = "figure") -> None:
    """Tests: the figure must already be what plotly.js reads (validation would otherwise hide
    a plotly-python-only spelling such as marker_color that the unvalidated page ignores)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if "_" in key and key not in PLOTLY_UNDERSCORE_NAMES:
                raise ValueError(f"{path}.{key}: write it nested (plotly.js does not read plotly-python's magic underscores)")
            _check_plain(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{path}[{i}]")


def _minutes(value) -> float | None:
    return None if value is None else round(float(value) / 60, 1)


def _days(rows: list[dict]) -> list:
    return [r["day"] for r in rows]


def _percentile_figure(
    rows: list[dict], series: list[tuple[str, str, str]], *, count_key: str = "n", count_label: str = "count", height: int = 280
) -> str | None:
    """Daily percentile lines (log duration axis, since a few stuck documents can be days old;
    hover shows the exact duration) over faint count bars kept in the lower third. The bars
    live on the base axis (right) and the lines on the overlay (left), so lines draw on top."""
    if not rows:
        return None
    days = _days(rows)
    fig = FigureSpec()
    top = max((r[count_key] for r in rows), default=0) or 1
    fig.add_bar(x=days, y=[r[count_key] for r in rows], name=count_label, marker_color="#dbe7f3", hovertemplate="%{y:,}<extra>" + count_label + "</extra>")
    for key, label, color in series:
        fig.add_scatter(
            x=days,
            y=[_minutes(r[key]) if r[key] else None for r in rows],
            name=label,
            mode="lines+markers",
            line={"color": color, "width": 2},
            marker={"size": 5},
            yaxis="y2",
            customdata=[human_duration(r[key]) for r in rows],
            hovertemplate="%{customdata}<extra>" + label + "</extra>",
        )
    values = [_minutes(r[key]) for r in rows for key, _, _ in series if r[key]]
    ticks = [(v, t) for v, t in LOG_TICKS if min(values, default=1) / 2.5 <= v <= max(values, default=1) * 2.5] or LOG_TICKS[:4]
    fig.update_layout(
        yaxis={"side": "right", "showgrid": False, "title": count_label, "type": "linear", "range": [0, top * 2.6], "tickformat": ",d", "nticks": 4},
        yaxis2={
            "overlaying": "y",
            "side": "left",
            "title": "duration (log scale)",
            "type": "log",
            "tickvals": [v for v, _ in ticks],
            "ticktext": [t for _, t in ticks],
            "gridcolor": "#eef1f5",
        },
    )
    return _figure_html(fig, height=height)


# minutes → label, for duration axes on a log scale
LOG_TICKS = [(0.5, "30s"), (1, "1m"), (5, "5m"), (15, "15m"), (60, "1h"), (240, "4h"), (1440, "1d"), (10080, "7d"), (43200, "30d")]


# --- overview: one daily trend per KPI ------------------------------------------------------
TREND_TITLES = ["Order cycle time", "Invoice sync lag", "SLA compliance", "Exceptions in and out", "Amendment failure rate"]


def overview_trends(window: Window) -> list[dict]:
    """One small chart per KPI, each with its numbers (a table) and links to the rows per day."""

    def day_link(page: str, day: date, **extra) -> str:
        params = {"start": day.isoformat(), "end": day.isoformat(), **extra}
        if window.entity:
            params["entity"] = window.entity
        return reverse(page) + "?" + "&".join(f"{k}={v}" for k, v in params.items())

    charts = []
    cycle = order_kpis.daily_cycle_time(window)
    charts.append(
        {
            "key": "cycle",
            "title": "Order cycle time",
            "unit": "p50 / p90 per day of activation",
            "html": _percentile_figure(cycle, [("p50", "p50", BLUE), ("p90", "p90", ORANGE)], count_label="activated", height=230),
            "columns": ["Day", "Activated", "p50", "p90"],
            "rows": [
                {
                    "link": day_link("monitoring:orders", r["day"], basis="completed"),
                    "cells": [r["day"], r["n"], human_duration(r["p50"]), human_duration(r["p90"])],
                }
                for r in cycle
            ],
            "empty": "No order was activated in this window.",
        }
    )
    lag = invoice_kpis.daily_invoice_lag(window)
    charts.append(
        {
            "key": "lag",
            "title": "Invoice sync lag",
            "unit": "p50 / p95 per day of finalization (unposted at their age)",
            "html": _percentile_figure(lag, [("p50", "p50", BLUE), ("p95", "p95", VERMILION)], count_label="finalized", height=230),
            "columns": ["Day", "Finalized", "Unposted", "p50", "p95"],
            "rows": [
                {
                    "link": day_link("monitoring:invoices", r["day"], basis="started"),
                    "cells": [r["day"], r["n"], r["unposted"], human_duration(r["p50"]), human_duration(r["p95"])],
                }
                for r in lag
            ],
            "empty": "No invoice was finalized in this window.",
        }
    )
    sla_days: dict = {}
    for r in sla_kpis.daily_sla(window):
        d = sla_days.setdefault(r["day"], {"day": r["day"], "due": 0, "met": 0})
        d["due"] += r["due"]
        d["met"] += r["met"]
    sla_rows = sorted(sla_days.values(), key=lambda r: r["day"])
    html = None
    if sla_rows:
        fig = FigureSpec()
        fig.add_scatter(
            x=_days(sla_rows),
            y=[round(100 * r["met"] / r["due"], 1) if r["due"] else None for r in sla_rows],
            name="compliance",
            mode="lines+markers",
            line={"color": GREEN, "width": 2},
            fill="tozeroy",
            fillcolor="rgba(0,158,115,.08)",
            customdata=[[r["met"], r["due"]] for r in sla_rows],
            hovertemplate="%{y:.1f}% (%{customdata[0]:,} of %{customdata[1]:,})<extra>SLA met</extra>",
        )
        fig.update_layout(yaxis={"title": "% met", "range": [0, 101]})
        html = _figure_html(fig, height=230)
    charts.append(
        {
            "key": "sla",
            "title": "SLA compliance",
            "unit": "flows met ÷ flows due, per day due (all flow types)",
            "html": html,
            "columns": ["Day", "Due", "Met", "Compliance"],
            "rows": [
                {
                    "link": day_link("monitoring:sla", r["day"]),
                    "cells": [r["day"], r["due"], r["met"], f"{100 * r['met'] / r['due']:.1f}%" if r["due"] else "—"],
                }
                for r in sla_rows
            ],
            "empty": "No flow was due in this window.",
        }
    )
    exc = exception_kpis.daily_exceptions(window)
    html = None
    if exc:
        fig = FigureSpec()
        fig.add_bar(x=_days(exc), y=[r["opened"] for r in exc], name="opened", marker_color=VERMILION, hovertemplate="%{y:,}<extra>opened</extra>")
        fig.add_bar(x=_days(exc), y=[r["resolved"] for r in exc], name="resolved", marker_color=GREEN, hovertemplate="%{y:,}<extra>resolved</extra>")
        fig.update_layout(barmode="group", yaxis={"title": "exceptions"})
        html = _figure_html(fig, height=230)
    charts.append(
        {
            "key": "exceptions",
            "title": "Exceptions in and out",
            "unit": "opened vs resolved per day",
            "html": html,
            "columns": ["Day", "Opened", "Resolved"],
            "rows": [{"link": reverse("monitoring:exceptions") + "?status=all&sort=-first_seen", "cells": [r["day"], r["opened"], r["resolved"]]} for r in exc],
            "empty": "No exception was opened or resolved in this window.",
        }
    )
    amend = amendment_kpis.daily_amendment_failure(window)
    html = None
    if amend:
        fig = FigureSpec()
        fig.add_bar(x=_days(amend), y=[r["started"] for r in amend], name="started", marker_color="#e6eef7", hovertemplate="%{y:,}<extra>started</extra>")
        fig.add_scatter(
            x=_days(amend),
            y=[round(100 * r["rate"], 1) if r["rate"] is not None else None for r in amend],
            name="failure rate",
            mode="lines+markers",
            line={"color": PURPLE, "width": 2},
            customdata=[r["with_exception"] for r in amend],
            yaxis="y2",
            hovertemplate="%{y:.1f}% (%{customdata:,} with an exception)<extra>failure rate</extra>",
        )
        top = max(r["started"] for r in amend) or 1
        fig.update_layout(
            yaxis={"side": "right", "showgrid": False, "title": "started", "range": [0, top * 2.6], "tickformat": ",d", "nticks": 4},
            yaxis2={
                "overlaying": "y",
                "side": "left",
                "title": "failed",
                "rangemode": "tozero",
                "gridcolor": "#eef1f5",
                "ticksuffix": "%",
                "tickformat": ".0f",
            },
        )
        html = _figure_html(fig, height=230)
    charts.append(
        {
            "key": "amendments",
            "title": "Amendment failure rate",
            "unit": "raised an exception ÷ started, per day requested",
            "html": html,
            "columns": ["Day", "Started", "With exception", "Failure rate"],
            "rows": [
                {
                    "link": day_link("monitoring:amendments", r["day"], basis="started"),
                    "cells": [r["day"], r["started"], r["with_exception"], f"{100 * r['rate']:.1f}%" if r["rate"] is not None else "—"],
                }
                for r in amend
            ],
            "empty": "No amendment was requested in this window.",
        }
    )
    return charts


# --- orders, invoices: distributions ----------------------------------------------------------
def histogram_figure(rows: list[dict], *, finished_label: str, unfinished_label: str | None = None) -> str | None:
    if not any(r["n"] for r in rows):
        return None
    labels = [r["label"] for r in rows]
    fig = FigureSpec()
    fig.add_bar(
        x=labels,
        y=[r["n"] - r["unfinished"] for r in rows],
        name=finished_label,
        marker_color=BLUE,
        hovertemplate="%{y:,}<extra>" + finished_label + "</extra>",
    )
    if unfinished_label and any(r["unfinished"] for r in rows):
        fig.add_bar(
            x=labels,
            y=[r["unfinished"] for r in rows],
            name=unfinished_label,
            marker_color=ORANGE,
            hovertemplate="%{y:,}<extra>" + unfinished_label + "</extra>",
        )
    fig.update_layout(barmode="stack", yaxis={"title": "count"}, xaxis={"type": "category"})
    return _figure_html(fig, height=260)


def label_buckets(rows: list[dict]) -> list[dict]:
    for r in rows:
        low, high = r["min_seconds"], r["max_seconds"]
        r["label"] = f"≥ {short_span(low)}" if high is None else (f"< {short_span(high)}" if not low else f"{short_span(low)} – {short_span(high)}")
    return rows


def cycle_time_chart(window: Window) -> str | None:
    return _percentile_figure(order_kpis.daily_cycle_time(window), [("p50", "p50", BLUE), ("p90", "p90", ORANGE)], count_label="activated")


def invoice_lag_chart(window: Window) -> str | None:
    return _percentile_figure(invoice_kpis.daily_invoice_lag(window), [("p50", "p50", BLUE), ("p95", "p95", VERMILION)], count_label="finalized")


def outcomes_chart(rows: list[dict]) -> str | None:
    if not rows:
        return None
    days = _days(rows)
    fig = FigureSpec()
    for key, label, color in [
        ("first_pass", "completed first time", GREEN),
        ("recovered", "completed after an exception", SKY),
        ("in_flight", "in flight", "#94a3b8"),
        ("failing", "failing (open exception)", VERMILION),
        ("cancelled", "cancelled", BLACK),
    ]:
        fig.add_bar(x=days, y=[r[key] for r in rows], name=label, marker_color=color, hovertemplate="%{y:,}<extra>" + label + "</extra>")
    fig.update_layout(barmode="stack", yaxis={"title": "flows started"})
    return _figure_html(fig, height=280)


def unposted_chart(rows: list[dict], currency: str) -> str | None:
    if not any(r["n"] for r in rows):
        return None
    fig = FigureSpec()
    fig.add_bar(
        x=[r["label"] for r in rows],
        y=[float(r["amount"]) for r in rows],
        name=f"value ({currency})",
        marker_color=ORANGE,
        customdata=[[r["n"], r["amount"]] for r in rows],
        hovertemplate="%{customdata[0]:,} invoices · " + currency + " %{customdata[1]}<extra></extra>",
    )
    fig.update_layout(yaxis={"title": currency, "tickformat": ",.0f"}, xaxis={"type": "category", "title": "age since finalized"})
    return _figure_html(fig, height=240, unified=False)


def sla_compliance_chart(rows: list[dict], policies: dict) -> str | None:
    """Daily compliance per flow type, with each type's objective as a dotted line."""
    if not rows:
        return None
    by_flow: dict[str, list[dict]] = {}
    for r in rows:
        by_flow.setdefault(r["flow_type"], []).append(r)
    fig = FigureSpec()
    for i, (flow, items) in enumerate(sorted(by_flow.items())):
        color = PALETTE[i % len(PALETTE)]
        label = FlowType(flow).label
        fig.add_scatter(
            x=_days(items),
            y=[round(100 * r["met"] / r["due"], 1) if r["due"] else None for r in items],
            name=label,
            mode="lines+markers",
            line={"color": color, "width": 2},
            customdata=[[r["met"], r["due"]] for r in items],
            hovertemplate="%{y:.1f}% (%{customdata[0]:,} of %{customdata[1]:,})<extra>" + label + "</extra>",
        )
    objectives = sorted({p["objective_pct"] for p in policies.values()})
    for obj in objectives[:1]:
        fig.add_hline(y=obj, line={"dash": "dot", "color": "#64748b", "width": 1}, annotation_text=f"objective {obj:g}%", annotation_position="bottom right")
    fig.update_layout(yaxis={"title": "% met", "range": [0, 101]})
    return _figure_html(fig, height=300)


def connector_chart(series: list[dict]) -> str | None:
    """Calls per interval per system (bars) with errors, and p95 latency (lines, right axis)."""
    if not series:
        return None
    systems = sorted({r["system"] for r in series})
    fig = FigureSpec()
    for i, system in enumerate(systems):
        items = [r for r in series if r["system"] == system]
        color = PALETTE[i % len(PALETTE)]
        fig.add_bar(
            x=[r["bucket"] for r in items],
            y=[r["calls"] for r in items],
            name=f"{system} calls",
            marker_color=color,
            opacity=0.55,
            customdata=[r["errors"] for r in items],
            hovertemplate="%{y:,} calls, %{customdata:,} errors<extra>" + system + "</extra>",
        )
        fig.add_scatter(
            x=[r["bucket"] for r in items],
            y=[r["p95_ms"] for r in items],
            name=f"{system} p95 ms",
            yaxis="y2",
            mode="lines",
            line={"color": color, "width": 2},
            hovertemplate="%{y:,.0f} ms<extra>" + system + " p95</extra>",
        )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "calls"},
        yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": "p95 latency (ms)", "rangemode": "tozero"},
    )
    return _figure_html(fig, height=280)
