"""Exceptions: open now by class, system and flow; opened and resolved in the window; mean time
to resolve; open ones by age."""

from __future__ import annotations

from .sql import EXC_TABLE, FLOW_TABLE, OPEN_EXC, fetch_all, fetch_one, local_day, round_seconds
from .window import Window


def exception_scope(window: Window) -> tuple[str, str, list]:
    """JOIN + WHERE that limit exceptions to the entity/currency filters (through their flow)."""
    if not (window.entity or window.currency):
        return "", "", []
    extra, params = window.flow_filter_sql()
    return f" JOIN {FLOW_TABLE} f ON f.id = e.flow_run_id", extra, params


def exceptions(window: Window) -> dict:
    """Open now by class/system/flow; opened and resolved in the window; mean time to resolve."""
    join, extra, params = exception_scope(window)
    grouped = fetch_all(
        f"""
        SELECT e.error_class, e.system, e.flow_type, count(*) AS n
        FROM {EXC_TABLE} e {join} WHERE e.status IN {OPEN_EXC} {extra}
        GROUP BY GROUPING SETS ((e.error_class), (e.system), (e.flow_type), ())
        """,
        params,
    )
    by_class, by_system, by_flow, total = {}, {}, {}, 0
    for row in grouped:
        if row["error_class"] is not None:
            by_class[row["error_class"]] = row["n"]
        elif row["system"] is not None:
            by_system[row["system"]] = row["n"]
        elif row["flow_type"] is not None:
            by_flow[row["flow_type"] or "(none)"] = row["n"]
        else:
            total = row["n"]
    moved = exceptions_moved(window)
    return {
        "open": total,
        "by_error_class": dict(sorted(by_class.items(), key=lambda kv: -kv[1])),
        "by_system": dict(sorted(by_system.items(), key=lambda kv: -kv[1])),
        "by_flow": dict(sorted(by_flow.items(), key=lambda kv: -kv[1])),
        "opened": moved["opened"],
        "resolved": moved["resolved"],
        "mttr_seconds": round_seconds(moved["mttr"]),
    }


def exceptions_moved(window: Window) -> dict:
    """Opened and resolved in the window, mean time to resolve."""
    join, extra, params = exception_scope(window)
    return fetch_one(
        f"""
        SELECT count(*) FILTER (WHERE e.first_seen >= %s AND e.first_seen < %s) AS opened,
               count(*) FILTER (WHERE e.status = 'resolved' AND e.resolved_at >= %s AND e.resolved_at < %s) AS resolved,
               avg(extract(epoch FROM e.resolved_at - e.first_seen)) FILTER (WHERE e.status = 'resolved' AND e.resolved_at >= %s AND e.resolved_at < %s) AS mttr
        FROM {EXC_TABLE} e {join}
        WHERE ((e.first_seen >= %s AND e.first_seen < %s) OR (e.resolved_at >= %s AND e.resolved_at < %s)) {extra}
        """,
        [window.start, window.end] * 5 + params,
    )


def open_at(window: Window, at) -> int:
    """Exceptions open at the instant `at` (within the window's entity/currency filters): first
    seen by then and not closed by then. Still open now and first seen by `at`, plus those closed
    (resolved or ignored) after `at` that were first seen by it — two indexed ranges, never a
    scan of the whole history."""
    join, extra, params = exception_scope(window)
    row = fetch_one(
        f"""
        SELECT (SELECT count(*) FROM {EXC_TABLE} e {join} WHERE e.status IN {OPEN_EXC} AND e.first_seen <= %s {extra})
             + (SELECT count(*) FROM {EXC_TABLE} e {join} WHERE e.status NOT IN {OPEN_EXC} AND e.resolved_at > %s AND e.first_seen <= %s {extra}) AS n
        """,
        [at, *params, at, at, *params],
    )
    return row["n"]


def exception_age_buckets(window: Window) -> dict:
    join, extra, params = exception_scope(window)
    age = "(%s - e.first_seen)"
    row = fetch_one(
        f"""
        SELECT count(*) FILTER (WHERE {age} < interval '1 hour') AS lt_1h,
               count(*) FILTER (WHERE {age} >= interval '1 hour' AND {age} < interval '1 day') AS lt_1d,
               count(*) FILTER (WHERE {age} >= interval '1 day' AND {age} < interval '7 days') AS lt_7d,
               count(*) FILTER (WHERE {age} >= interval '7 days') AS gte_7d
        FROM {EXC_TABLE} e {join} WHERE e.status IN {OPEN_EXC} {extra}
        """,
        [window.as_of] * 6 + params,
    )
    return {"< 1 h": row["lt_1h"], "1 h – 1 d": row["lt_1d"], "1 – 7 d": row["lt_7d"], "≥ 7 d": row["gte_7d"]}


def daily_exceptions(window: Window) -> list[dict]:
    join, extra, params = exception_scope(window)
    return fetch_all(
        f"""
        SELECT day, sum(opened)::int AS opened, sum(resolved)::int AS resolved FROM (
            SELECT {local_day("e.first_seen")} AS day, 1 AS opened, 0 AS resolved FROM {EXC_TABLE} e {join}
             WHERE e.first_seen >= %s AND e.first_seen < %s {extra}
            UNION ALL
            SELECT {local_day("e.resolved_at")}, 0, 1 FROM {EXC_TABLE} e {join}
             WHERE e.status = 'resolved' AND e.resolved_at >= %s AND e.resolved_at < %s {extra}
        ) t GROUP BY day ORDER BY day
        """,
        [window.tz, window.start, window.end, *params, window.tz, window.start, window.end, *params],
    )
