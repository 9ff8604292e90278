"""The KPIs together: the API's answer, and what the Overview compares with the previous period."""

from __future__ import annotations

from monitoring.models import SlaPolicy

from . import money
from .amendments import amendments, renewal_accuracy
from .exceptions import exceptions, exceptions_moved, open_at
from .invoices import invoice_sync_lag, lag_percentiles
from .orders import cycle_percentiles, order_cycle_time
from .quality import duplicate_rate, retries
from .sla import due_and_met, sla, sla_overall
from .sql import rate, round_seconds
from .window import Window


def kpi_summary(window: Window) -> dict:
    return {
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat(), "entity": window.entity or None, "currency": window.currency or None},
        "order_cycle_time": order_cycle_time(window),
        "amendments": amendments(window),
        "invoice_sync_lag": invoice_sync_lag(window),
        "exceptions": exceptions(window),
        "sla": sla(window),
        "revenue_at_risk": (risk := money.revenue_at_risk(window)),
        "retries": retries(window),
        "duplicate_rate": duplicate_rate(window),
        "renewal_accuracy": renewal_accuracy(window),
        # the money figures (docs/MONEY.md), all "now" at the reporting rate of the day
        "records_out_of_date": risk["records_out_of_date"],
        "dollars_in_flight": money.dollars_in_flight(window),
        "arr": money.arr(window),
        "unbilled_arr": money.unbilled_arr(window),
        "payments": money.payment_states(window),
        "close_readiness": money.close_readiness(window),
        "unconverted": money.unconverted(window),
    }


def kpi_previous_basis(window: Window) -> dict:
    """Only what the Overview's tiles compare with: the window-dependent figures (no "now"
    lists, no money), with the same definitions as kpi_trend_basis; exceptions as they stood
    when this (previous) window ended."""
    cycle, lag = cycle_percentiles(window), lag_percentiles(window)
    due = due_and_met(window, list(SlaPolicy.objects.values_list("flow_type", flat=True)))
    due_n, met_n = sum(r["due"] for r in due.values()), sum(r["met"] for r in due.values())
    return {
        "order_cycle_time": {"count": cycle["count"], "p50_seconds": round_seconds(cycle["p50"]), "p90_seconds": round_seconds(cycle["p90"])},
        "invoice_sync_lag": {"posted": lag["posted"], "p50_seconds": round_seconds(lag["p50"]), "p95_seconds": round_seconds(lag["p95"])},
        "sla_overall": {"due": due_n, "met": met_n, "breached": due_n - met_n, "compliance": rate(met_n, due_n)},
        "exceptions": {"opened": exceptions_moved(window)["opened"], "open_at_end": open_at(window, window.end)},
        "amendments": amendments(window),
        "renewal_accuracy": renewal_accuracy(window),
    }


def kpi_trend_basis(window: Window) -> dict:
    """The figures the Overview compares with the previous period (fewer queries than kpi_summary)."""
    sla_rows = sla(window)
    exc = exceptions(window)
    # like with like: open when the window ends (now, for a window that reaches now)
    exc["open_at_end"] = exc["open"] if window.reaches_now else open_at(window, window.end)
    return {
        "order_cycle_time": order_cycle_time(window),
        "amendments": amendments(window),
        "invoice_sync_lag": invoice_sync_lag(window),
        "exceptions": exc,
        "sla": sla_rows,
        "sla_overall": sla_overall(sla_rows),
        "renewal_accuracy": renewal_accuracy(window),
    }
