"""Order cycle time: order activations *completed in the window*, business_completed_at
(= activated_at) − business_started_at (= closed_won_at); in flight = not yet activated now."""

from __future__ import annotations

from django.conf import settings

from sync.models import FlowType

from .sources import completed_source
from .sql import ACTIVE, DURATION, FLOW_TABLE, cents, fetch_all, fetch_one, local_day, reporting_amount_sql, round_seconds
from .window import Window


def cycle_percentiles(window: Window) -> dict:
    src, src_params = completed_source(window, [FlowType.ORDER_ACTIVATION])
    return fetch_one(
        f"""
        SELECT count(d) AS count,
               percentile_cont(0.5)  WITHIN GROUP (ORDER BY d) AS p50,
               percentile_cont(0.9)  WITHIN GROUP (ORDER BY d) AS p90,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY d) AS p95
        FROM ({src}) src, unnest(src.durations) d
        """,
        src_params,
    )


def order_cycle_time(window: Window) -> dict:
    """activated_at − closed_won_at of order activations completed in the window."""
    extra, params = window.flow_filter_sql()
    row = cycle_percentiles(window)
    in_flight = fetch_one(
        f"""
        SELECT count(*) AS n, max(extract(epoch FROM %s - f.business_started_at)) AS oldest,
               coalesce(sum({reporting_amount_sql()}), 0) AS amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status IN {ACTIVE} {extra}
        """,
        [window.as_of, settings.REPORTING_CURRENCY, FlowType.ORDER_ACTIVATION, *params],
    )
    return {
        "count": row["count"],
        "p50_seconds": round_seconds(row["p50"]),
        "p90_seconds": round_seconds(row["p90"]),
        "p95_seconds": round_seconds(row["p95"]),
        "in_flight": in_flight["n"],
        # screens only (the API keeps to the contract's keys)
        "oldest_in_flight_seconds": round_seconds(in_flight["oldest"]),
        "in_flight_amount": {"currency": settings.REPORTING_CURRENCY, "amount": cents(in_flight["amount"])},
    }


def cycle_time_by_entity(window: Window) -> list[dict]:
    """Per legal entity: activated, p50, p90 in the window and in flight now."""
    extra, params = window.flow_filter_sql()
    src, src_params = completed_source(window, [FlowType.ORDER_ACTIVATION])
    entity = "coalesce(nullif(legal_entity, ''), '—')"
    done = fetch_all(
        f"""
        SELECT {entity} AS entity, count(d) AS activated,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY d) AS p90
        FROM ({src}) src, unnest(src.durations) d
        GROUP BY 1
        """,
        src_params,
    )
    flying = fetch_all(
        f"""
        SELECT coalesce(nullif(f.legal_entity, ''), '—') AS entity, count(*) AS in_flight
        FROM {FLOW_TABLE} f WHERE f.flow_type = %s AND f.status IN {ACTIVE} {extra} GROUP BY 1
        """,
        [FlowType.ORDER_ACTIVATION, *params],
    )
    rows = {r["entity"]: {**r, "in_flight": 0} for r in done}
    for r in flying:
        rows.setdefault(r["entity"], {"entity": r["entity"], "activated": 0, "p50": None, "p90": None})["in_flight"] = r["in_flight"]
    return sorted(rows.values(), key=lambda r: (-r["activated"], r["entity"]))


def slowest_orders(window: Window, limit: int = 10) -> list[dict]:
    extra, params = window.flow_filter_sql()
    return fetch_all(
        f"""
        SELECT f.id, f.document_number, f.deal_id, f.account_name, f.legal_entity, f.amount, f.currency, f.business_started_at,
               f.business_completed_at, {DURATION} AS seconds, f.sla_breached
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = 'order_activation' AND f.status = 'completed' AND f.business_completed_at >= %s AND f.business_completed_at < %s {extra}
        ORDER BY {DURATION} DESC, f.id LIMIT %s  -- flowrun_order_duration_idx (sync migration 0007)
        """,
        [window.start, window.end, *params, limit],
    )


def daily_cycle_time(window: Window) -> list[dict]:
    src, src_params = completed_source(window, [FlowType.ORDER_ACTIVATION])
    return fetch_all(
        f"""
        SELECT {local_day("src.ts")} AS day, count(d) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY d) AS p90
        FROM ({src}) src, unnest(src.durations) d
        GROUP BY 1 ORDER BY 1
        """,
        [window.tz, *src_params],
    )
