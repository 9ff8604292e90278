"""Row sources: hourly rollups + raw rows, one relation per fact.

Each KPI reads one of three relations, whose rows are either a rollup row (one hour of settled
runs) or one raw flow run; the columns are the same, so the aggregate on top does not care.
See monitoring/kpis/rollups.py for why the split is exact.
"""

from __future__ import annotations

from . import rollups
from .sql import ACTIVE, DURATION, FLOW_TABLE
from .window import Window

ROLLUP_TABLE = rollups.ROLLUP_TABLE
EMPTY = "'{}'::float8[]"

_RAW_STARTED = f"""
    SELECT f.business_started_at AS ts, f.flow_type, f.legal_entity, f.currency, 1 AS n,
           f.had_exception::int AS with_exception, (f.status = 'completed')::int AS completed,
           (f.status = 'completed' AND NOT f.had_exception)::int AS first_pass, (f.status = 'cancelled')::int AS cancelled,
           (f.status IN {ACTIVE} AND f.had_exception)::int AS active_exc, (f.status IN {ACTIVE} AND NOT f.had_exception)::int AS active_clean,
           CASE WHEN f.status = 'completed' THEN ARRAY[{DURATION}::float8] ELSE {EMPTY} END AS durations,
           CASE WHEN f.status IN {ACTIVE} THEN ARRAY[extract(epoch FROM %s - f.business_started_at)::float8] ELSE {EMPTY} END AS ages
    FROM {FLOW_TABLE} f"""
_ROLLUP_STARTED = f"""
    SELECT r.hour AS ts, r.flow_type, r.legal_entity, r.currency, r.started AS n, r.started_with_exception AS with_exception,
           r.started_completed AS completed, r.started_first_pass AS first_pass, r.started_cancelled AS cancelled,
           0 AS active_exc, 0 AS active_clean, r.started_durations AS durations, {EMPTY} AS ages
    FROM {ROLLUP_TABLE} r"""
_RAW_COMPLETED = f"SELECT f.business_completed_at AS ts, f.flow_type, f.legal_entity, f.currency, ARRAY[{DURATION}::float8] AS durations FROM {FLOW_TABLE} f"
_ROLLUP_COMPLETED = f"SELECT r.hour AS ts, r.flow_type, r.legal_entity, r.currency, r.completed_durations AS durations FROM {ROLLUP_TABLE} r"
_RAW_DUE = f"""
    SELECT f.sla_due_at AS ts, f.flow_type, f.legal_entity, f.currency, 1 AS due,
           (f.business_completed_at IS NOT NULL AND f.business_completed_at <= f.sla_due_at)::int AS met
    FROM {FLOW_TABLE} f"""
_ROLLUP_DUE = f"SELECT r.hour AS ts, r.flow_type, r.legal_entity, r.currency, r.due, r.due_met AS met FROM {ROLLUP_TABLE} r"


def _source(
    window: Window,
    flow_types: list[str],
    *,
    column: str,
    raw: str,
    raw_params: list,
    rollup: str,
    rollup_count: str,
    raw_where: str,
    raw_where_params: list,
    unsettled_where: str | None,
) -> tuple[str, list]:
    """UNION ALL of: rollup rows of the clean rolled hours; raw runs of the other hours; and the
    unsettled raw runs inside the rolled hours (rollups hold settled runs only)."""
    plan = window.rollup_plan
    types = [str(t) for t in flow_types]
    f_extra, f_params = window.flow_filter_sql("f")
    parts, params = [], []
    if plan.uses_rollup:
        r_extra, r_params = window.flow_filter_sql("r")
        parts.append(
            f"{rollup} WHERE r.{rollup_count} > 0 AND r.flow_type = ANY(%s) AND r.hour >= %s AND r.hour < %s AND r.hour <> ALL(%s::timestamptz[]) {r_extra}"
        )
        params += [types, plan.rolled_from, plan.rolled_to, list(plan.dirty), *r_params]
        if unsettled_where is not None:
            parts.append(
                f"{raw} WHERE f.flow_type = ANY(%s) AND f.status IN {ACTIVE} AND {unsettled_where} AND f.{column} >= %s AND f.{column} < %s"
                f" AND date_trunc('hour', f.{column}, 'UTC') <> ALL(%s::timestamptz[]) {f_extra}"
            )
            params += [*raw_params, types, *raw_where_params, plan.rolled_from, plan.rolled_to, list(plan.dirty), *f_params]
    ranges, range_params = rollups.ranges_sql(f"f.{column}", list(plan.raw_ranges))
    parts.append(f"{raw} WHERE f.flow_type = ANY(%s) AND {raw_where} AND {ranges} {f_extra}")
    params += [*raw_params, types, *raw_where_params, *range_params, *f_params]
    return " UNION ALL ".join(f"({p})" for p in parts), params


def started_source(window: Window, flow_types: list[str]) -> tuple[str, list]:
    """Runs started (business_started_at) in the window: counts per outcome; `durations` of the
    completed ones, `ages` (now − start) of the unsettled ones."""
    return _source(
        window,
        flow_types,
        column="business_started_at",
        raw=_RAW_STARTED,
        raw_params=[window.as_of],
        rollup=_ROLLUP_STARTED,
        rollup_count="started",
        raw_where="true",
        raw_where_params=[],
        unsettled_where="true",
    )


def completed_source(window: Window, flow_types: list[str]) -> tuple[str, list]:
    """Runs completed (business_completed_at) in the window, with their durations."""
    return _source(
        window,
        flow_types,
        column="business_completed_at",
        raw=_RAW_COMPLETED,
        raw_params=[],
        rollup=_ROLLUP_COMPLETED,
        rollup_count="completed",
        raw_where="f.status = 'completed'",
        raw_where_params=[],
        unsettled_where=None,
    )


def due_source(window: Window, flow_types: list[str]) -> tuple[str, list]:
    """Runs whose SLA falls due in the window and whose outcome is known now (finished, or past due)."""
    return _source(
        window,
        flow_types,
        column="sla_due_at",
        raw=_RAW_DUE,
        raw_params=[],
        rollup=_ROLLUP_DUE,
        rollup_count="due",
        raw_where="f.status <> 'cancelled' AND (f.business_completed_at IS NOT NULL OR f.sla_due_at <= %s)",
        raw_where_params=[window.as_of],
        unsettled_where="f.sla_due_at <= %s",
    )


def values_sql(*, with_ages: bool) -> str:
    """One row per value of the CTE `src` (ts, d, unfinished): the durations, and with_ages the
    ages of its unsettled runs too (invoice lag counts unposted invoices at their age)."""
    sql = "SELECT src.ts, d, false AS unfinished FROM src, unnest(src.durations) d"
    return sql + " UNION ALL SELECT src.ts, a, true FROM src, unnest(src.ages) a" if with_ages else sql
