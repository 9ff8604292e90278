"""Amendments and renewals: flows *started in the window*.

Amendment failure rate = amendments that raised ≥ 1 exception ÷ started; first-pass success =
completed without an exception ÷ started; completed = completed so far. Renewal accuracy =
renewals completed without an exception ÷ renewals due."""

from __future__ import annotations

from sync.models import FlowType

from .sources import started_source
from .sql import EXC_TABLE, FLOW_TABLE, OPEN_EXC, fetch_all, fetch_one, local_day, rate
from .window import Window


def started_outcomes(flow_type: str, window: Window) -> dict:
    src, params = started_source(window, [flow_type])
    return fetch_one(
        f"""
        SELECT coalesce(sum(n), 0)::int AS started, coalesce(sum(with_exception), 0)::int AS with_exception,
               coalesce(sum(completed), 0)::int AS completed, coalesce(sum(first_pass), 0)::int AS first_pass
        FROM ({src}) src
        """,
        params,
    )


def amendments(window: Window) -> dict:
    """Failure rate = amendments that raised ≥ 1 exception ÷ amendments started in the window."""
    row = started_outcomes(FlowType.AMENDMENT, window)
    return {
        "started": row["started"],
        "with_exception": row["with_exception"],
        "failure_rate": rate(row["with_exception"], row["started"]),
        "first_pass_success_rate": rate(row["first_pass"], row["started"]),
        "completed": row["completed"],
        "completion_rate": rate(row["completed"], row["started"]),
    }


def renewal_accuracy(window: Window) -> dict:
    """Renewals completed without an exception ÷ renewals due (due_at in the window)."""
    row = started_outcomes(FlowType.RENEWAL, window)
    return {"due": row["started"], "completed_without_exception": row["first_pass"], "accuracy": rate(row["first_pass"], row["started"])}


def failure_reasons(flow_types: list[str], window: Window, limit: int = 10) -> list[dict]:
    """Exceptions raised by these flows in the window, grouped by step, system and error class."""
    extra, params = window.flow_filter_sql()
    return fetch_all(
        f"""
        SELECT e.flow_type, e.step_name, e.system, e.error_class, count(*) AS n,
               count(*) FILTER (WHERE e.status IN {OPEN_EXC}) AS still_open, min(e.message) AS example
        FROM {EXC_TABLE} e JOIN {FLOW_TABLE} f ON f.id = e.flow_run_id
        WHERE e.flow_type = ANY(%s) AND e.first_seen >= %s AND e.first_seen < %s {extra}
        GROUP BY 1, 2, 3, 4 ORDER BY n DESC, 1, 2 LIMIT %s
        """,
        [list(flow_types), window.start, window.end, *params, limit],
    )


def daily_outcomes(flow_types: list[str], window: Window) -> list[dict]:
    """Per day started: first-pass success, completed after an exception, still open, cancelled."""
    src, src_params = started_source(window, list(flow_types))
    return fetch_all(
        f"""
        SELECT {local_day("src.ts")} AS day, sum(n)::int AS started,
               sum(first_pass)::int AS first_pass,
               sum(completed - first_pass)::int AS recovered,
               sum(active_exc)::int AS failing,
               sum(active_clean)::int AS in_flight,
               sum(cancelled)::int AS cancelled,
               sum(with_exception)::int AS with_exception
        FROM ({src}) src
        GROUP BY 1 ORDER BY 1
        """,
        [window.tz, *src_params],
    )


def daily_amendment_failure(window: Window) -> list[dict]:
    """Per day requested: amendments started, those that raised an exception, the rate."""
    return [
        {"day": r["day"], "started": r["started"], "with_exception": r["with_exception"], "rate": rate(r["with_exception"], r["started"])}
        for r in daily_outcomes([FlowType.AMENDMENT], window)
    ]
