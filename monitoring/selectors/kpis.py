"""KPI selectors: the definitions in DESIGN.md, computed set-based in PostgreSQL.

Each function takes a `Window` [start, end) and returns plain dicts; the API, the screens and
the tests all call these, so they cannot disagree. Percentiles use `percentile_cont` in the
database (linear interpolation); no function loads flow rows into Python.

"Now" is the window's `as_of` (one instant per request), passed to SQL as a parameter rather
than `now()`, so every figure on a page is computed against the same clock.

Definitions (DESIGN.md → SQL):
- order cycle time: order activations *completed in the window*, business_completed_at
  (= activated_at) − business_started_at (= closed_won_at); in flight = not yet activated now.
- amendment failure rate: amendments *started in the window* that raised ≥ 1 exception ÷ started;
  first-pass success = completed without an exception ÷ started; completed = completed so far.
- invoice sync lag: invoices *finalized in the window*: posted_at − finalized_at, and for the
  unposted ones their age (as_of − finalized_at), both in the distribution.
- SLA: flows whose due time falls in the window and whose outcome is known (finished, or past
  due): met = finished by the due time; breached = the rest; at risk = running now, past
  `at_risk_pct` of their allowed time and not yet due.
- revenue at risk: now, in reporting currency; each flow once (open exception or breached SLA),
  plus open exceptions that belong to no flow, each document once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from monitoring import rollups
from sync.models import CurrencyRate, FlowRun, FlowStep, FlowType, SyncException

ACTIVE = "('pending','running','waiting','parked','failed')"
OPEN_EXC = "('open','retrying')"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    entity: str = ""
    currency: str = ""
    as_of: datetime = field(default_factory=lambda: timezone.now())

    @classmethod
    def last_days(cls, days: int = 30, **kwargs) -> "Window":
        end = kwargs.pop("as_of", None) or timezone.now()
        return cls(start=end - timedelta(days=days), end=end, as_of=end, **kwargs)

    def previous(self) -> "Window":
        span = self.end - self.start
        return replace(self, start=self.start - span, end=self.start)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def flow_filter_sql(self, alias: str = "f") -> tuple[str, list]:
        """Extra WHERE for the optional entity/currency filters."""
        sql, params = "", []
        if self.entity:
            sql += f" AND {alias}.legal_entity = %s"
            params.append(self.entity)
        if self.currency:
            sql += f" AND {alias}.currency = %s"
            params.append(self.currency)
        return sql, params

    @property
    def tz(self) -> str:
        return timezone.get_current_timezone_name()

    @cached_property
    def rollup_plan(self) -> rollups.RollupPlan:
        """Which hours of the window come from the hourly rollups and which from raw rows
        (read once per window, so every figure of a request uses the same split)."""
        return rollups.plan(self.start, self.end, self.tz)


def _one(sql: str, params: list) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        return dict(zip([c.name for c in cursor.description], row))


def _all(sql: str, params: list) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _seconds(value) -> float | None:
    return None if value is None else round(float(value), 1)


def _rate(numerator: int, denominator: int) -> float | None:
    return None if not denominator else round(numerator / denominator, 4)


def _money(value) -> str:
    return str(Decimal(value or 0).quantize(CENT))


FLOW_TABLE = FlowRun._meta.db_table
STEP_TABLE = FlowStep._meta.db_table
EXC_TABLE = SyncException._meta.db_table
RATE_TABLE = CurrencyRate._meta.db_table
DURATION = "extract(epoch FROM f.business_completed_at - f.business_started_at)"


def reporting_amount_sql(alias: str = "f") -> str:
    """A flow's amount in the reporting currency: the engine's `amount_reporting`, or, when the
    engine could not convert, the amount × the latest CurrencyRate on or before the flow's day."""
    return f"""coalesce(nullif({alias}.amount_reporting, 0), {alias}.amount * coalesce(
        CASE WHEN {alias}.currency IN ('', %s) THEN 1 END,
        (SELECT r.rate_to_reporting FROM {RATE_TABLE} r WHERE r.currency = {alias}.currency
           AND r.valid_from <= ({alias}.business_started_at)::date ORDER BY r.valid_from DESC LIMIT 1), 1))"""


# --- row sources: hourly rollups + raw rows, one relation per fact ----------------------------
# Each KPI reads one of three relations, whose rows are either a rollup row (one hour of settled
# runs) or one raw flow run; the columns are the same, so the aggregate on top does not care.
# See monitoring/rollups.py for why the split is exact.
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


def _source(window: Window, flow_types: list[str], *, column: str, raw: str, raw_params: list, rollup: str, rollup_count: str,
            raw_where: str, raw_where_params: list, unsettled_where: str | None) -> tuple[str, list]:
    """UNION ALL of: rollup rows of the clean rolled hours; raw runs of the other hours; and the
    unsettled raw runs inside the rolled hours (rollups hold settled runs only)."""
    plan = window.rollup_plan
    types = [str(t) for t in flow_types]
    f_extra, f_params = window.flow_filter_sql("f")
    parts, params = [], []
    if plan.uses_rollup:
        r_extra, r_params = window.flow_filter_sql("r")
        parts.append(f"{rollup} WHERE r.{rollup_count} > 0 AND r.flow_type = ANY(%s) AND r.hour >= %s AND r.hour < %s AND r.hour <> ALL(%s::timestamptz[]) {r_extra}")
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
    return _source(window, flow_types, column="business_started_at", raw=_RAW_STARTED, raw_params=[window.as_of],
                   rollup=_ROLLUP_STARTED, rollup_count="started", raw_where="true", raw_where_params=[], unsettled_where="true")


def completed_source(window: Window, flow_types: list[str]) -> tuple[str, list]:
    """Runs completed (business_completed_at) in the window, with their durations."""
    return _source(window, flow_types, column="business_completed_at", raw=_RAW_COMPLETED, raw_params=[],
                   rollup=_ROLLUP_COMPLETED, rollup_count="completed", raw_where="f.status = 'completed'", raw_where_params=[], unsettled_where=None)


def due_source(window: Window, flow_types: list[str]) -> tuple[str, list]:
    """Runs whose SLA falls due in the window and whose outcome is known now (finished, or past due)."""
    return _source(window, flow_types, column="sla_due_at", raw=_RAW_DUE, raw_params=[], rollup=_ROLLUP_DUE, rollup_count="due",
                   raw_where="f.status <> 'cancelled' AND (f.business_completed_at IS NOT NULL OR f.sla_due_at <= %s)",
                   raw_where_params=[window.as_of], unsettled_where="f.sla_due_at <= %s")


# --- order cycle time -----------------------------------------------------------------------
def _cycle_percentiles(window: Window) -> dict:
    src, src_params = completed_source(window, [FlowType.ORDER_ACTIVATION])
    return _one(
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
    row = _cycle_percentiles(window)
    in_flight = _one(
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
        "p50_seconds": _seconds(row["p50"]),
        "p90_seconds": _seconds(row["p90"]),
        "p95_seconds": _seconds(row["p95"]),
        "in_flight": in_flight["n"],
        # screens only (the API keeps to the contract's keys)
        "oldest_in_flight_seconds": _seconds(in_flight["oldest"]),
        "in_flight_amount": {"currency": settings.REPORTING_CURRENCY, "amount": _money(in_flight["amount"])},
    }


def cycle_time_by_entity(window: Window) -> list[dict]:
    """Per legal entity: activated, p50, p90 in the window and in flight now."""
    extra, params = window.flow_filter_sql()
    src, src_params = completed_source(window, [FlowType.ORDER_ACTIVATION])
    entity = "coalesce(nullif(legal_entity, ''), '—')"
    done = _all(
        f"""
        SELECT {entity} AS entity, count(d) AS activated,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY d) AS p90
        FROM ({src}) src, unnest(src.durations) d
        GROUP BY 1
        """,
        src_params,
    )
    flying = _all(
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


CYCLE_BUCKETS = [300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400]  # seconds: 5m … 1d
LAG_BUCKETS = [300, 900, 1800, 3600, 7200, 14400, 86400, 259200]  # 5m … 3d


def bucket_labels(edges: list[int]) -> list[tuple[int | None, int | None]]:
    """[(lower, upper)] for width_bucket's 0..len(edges) results."""
    bounds = [0, *edges, None]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def _values_sql(*, with_ages: bool) -> str:
    """One row per value of the CTE `src` (ts, d, unfinished): the durations, and with_ages the
    ages of its unsettled runs too (invoice lag counts unposted invoices at their age)."""
    sql = "SELECT src.ts, d, false AS unfinished FROM src, unnest(src.durations) d"
    return sql + " UNION ALL SELECT src.ts, a, true FROM src, unnest(src.ages) a" if with_ages else sql


def duration_histogram(flow_type: str, window: Window, edges: list[int], *, include_unfinished: bool = False) -> list[dict]:
    """Counts per duration bucket; the invoice lag counts unposted invoices with their age."""
    if include_unfinished:  # invoices: finalized in the window, unposted at their age
        src, src_params = started_source(window, [flow_type])
    else:  # orders: completed in the window
        src, src_params = completed_source(window, [flow_type])
    edge_sql = "ARRAY[" + ",".join(str(float(e)) for e in edges) + "]::float8[]"
    rows = _all(
        f"""
        WITH src AS MATERIALIZED ({src})
        SELECT width_bucket(v.d, {edge_sql}) AS bucket, count(*) AS n, count(*) FILTER (WHERE v.unfinished) AS unfinished
        FROM ({_values_sql(with_ages=include_unfinished)}) v
        GROUP BY 1 ORDER BY 1
        """,
        src_params,
    )
    found = {r["bucket"]: r for r in rows}
    out = []
    for i, (low, high) in enumerate(bucket_labels(edges)):
        r = found.get(i, {"n": 0, "unfinished": 0})
        out.append({"bucket": i, "min_seconds": low, "max_seconds": high, "n": r["n"], "unfinished": r["unfinished"], "finished": r["n"] - r["unfinished"]})
    return out


def slowest_orders(window: Window, limit: int = 10) -> list[dict]:
    extra, params = window.flow_filter_sql()
    return _all(
        f"""
        SELECT f.id, f.document_number, f.account_name, f.legal_entity, f.amount, f.currency, f.business_started_at,
               f.business_completed_at, {DURATION} AS seconds, f.sla_breached
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = 'order_activation' AND f.status = 'completed' AND f.business_completed_at >= %s AND f.business_completed_at < %s {extra}
        ORDER BY {DURATION} DESC, f.id LIMIT %s  -- flowrun_order_duration_idx (sync migration 0007)
        """,
        [window.start, window.end, *params, limit],
    )


def in_flight(flow_types: list[str], window: Window, limit: int = 15) -> list[dict]:
    """Oldest unfinished flows first, with the step they wait on."""
    extra, params = window.flow_filter_sql()
    return _all(
        f"""
        SELECT f.id, f.flow_type, f.document_number, f.account_name, f.legal_entity, f.amount, f.currency, f.status,
               f.current_step, f.parked_reason, f.waits_for, f.business_started_at, f.sla_due_at, f.sla_breached,
               extract(epoch FROM %s - f.business_started_at) AS age_seconds,
               (SELECT s.name || coalesce(' · ' || nullif(s.error_class, ''), '') FROM {STEP_TABLE} s
                 WHERE s.flow_run_id = f.id AND s.status NOT IN ('succeeded', 'skipped') ORDER BY s.seq LIMIT 1) AS waiting_step
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = ANY(%s) AND f.status IN {ACTIVE} {extra}
        ORDER BY f.business_started_at, f.id LIMIT %s
        """,
        [window.as_of, list(flow_types), *params, limit],
    )


# --- amendments, renewals -----------------------------------------------------------------
def _started_outcomes(flow_type: str, window: Window) -> dict:
    src, params = started_source(window, [flow_type])
    return _one(
        f"""
        SELECT coalesce(sum(n), 0)::int AS started, coalesce(sum(with_exception), 0)::int AS with_exception,
               coalesce(sum(completed), 0)::int AS completed, coalesce(sum(first_pass), 0)::int AS first_pass
        FROM ({src}) src
        """,
        params,
    )


def amendments(window: Window) -> dict:
    """Failure rate = amendments that raised ≥ 1 exception ÷ amendments started in the window."""
    row = _started_outcomes(FlowType.AMENDMENT, window)
    return {
        "started": row["started"],
        "with_exception": row["with_exception"],
        "failure_rate": _rate(row["with_exception"], row["started"]),
        "first_pass_success_rate": _rate(row["first_pass"], row["started"]),
        "completed": row["completed"],
        "completion_rate": _rate(row["completed"], row["started"]),
    }


def renewal_accuracy(window: Window) -> dict:
    """Renewals completed without an exception ÷ renewals due (due_at in the window)."""
    row = _started_outcomes(FlowType.RENEWAL, window)
    return {"due": row["started"], "completed_without_exception": row["first_pass"], "accuracy": _rate(row["first_pass"], row["started"])}


def failure_reasons(flow_types: list[str], window: Window, limit: int = 10) -> list[dict]:
    """Exceptions raised by these flows in the window, grouped by step, system and error class."""
    extra, params = window.flow_filter_sql()
    return _all(
        f"""
        SELECT e.flow_type, e.step_name, e.system, e.error_class, count(*) AS n,
               count(*) FILTER (WHERE e.status IN {OPEN_EXC}) AS still_open, min(e.message) AS example
        FROM {EXC_TABLE} e JOIN {FLOW_TABLE} f ON f.id = e.flow_run_id
        WHERE e.flow_type = ANY(%s) AND e.first_seen >= %s AND e.first_seen < %s {extra}
        GROUP BY 1, 2, 3, 4 ORDER BY n DESC, 1, 2 LIMIT %s
        """,
        [list(flow_types), window.start, window.end, *params, limit],
    )


# --- invoices -------------------------------------------------------------------------------
def _lag_percentiles(window: Window) -> dict:
    src, src_params = started_source(window, [FlowType.INVOICE_POSTING])
    return _one(
        f"""
        WITH src AS MATERIALIZED ({src})
        SELECT (SELECT coalesce(sum(completed), 0)::int FROM src) AS posted,
               (SELECT coalesce(sum(active_exc + active_clean), 0)::int FROM src) AS unposted,
               percentile_cont(0.5)  WITHIN GROUP (ORDER BY v) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY v) AS p95
        FROM src, unnest(src.durations || src.ages) v
        """,
        src_params,
    )


def invoice_sync_lag(window: Window) -> dict:
    """posted_at − finalized_at for invoices finalized in the window; unposted ones count with their age."""
    extra, params = window.flow_filter_sql()
    row = _lag_percentiles(window)
    unposted = _one(
        f"""
        SELECT max(extract(epoch FROM %s - f.business_started_at)) AS oldest,
               coalesce(sum({reporting_amount_sql()}), 0) AS amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status IN {ACTIVE} AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        """,
        [window.as_of, settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, window.start, window.end, *params],
    )
    return {
        "posted": row["posted"],
        "p50_seconds": _seconds(row["p50"]),
        "p95_seconds": _seconds(row["p95"]),
        "unposted": row["unposted"],
        "oldest_unposted_seconds": _seconds(unposted["oldest"]),
        "unposted_amount": {"currency": settings.REPORTING_CURRENCY, "amount": _money(unposted["amount"])},
    }


UNPOSTED_AGE_BUCKETS = [(0, 3600, "< 1 h"), (3600, 14400, "1–4 h"), (14400, 86400, "4–24 h"), (86400, 259200, "1–3 days"), (259200, None, "> 3 days")]


def unposted_by_age(window: Window) -> list[dict]:
    """Invoices finalized in the window and not posted, by age bucket, with their value."""
    extra, params = window.flow_filter_sql()
    age = "extract(epoch FROM %s - f.business_started_at)"
    cases = " ".join(f"WHEN {age} < {high} THEN {i}" for i, (_, high, _) in enumerate(UNPOSTED_AGE_BUCKETS) if high)
    rows = _all(
        f"""
        SELECT CASE {cases} ELSE {len(UNPOSTED_AGE_BUCKETS) - 1} END AS bucket, count(*) AS n,
               coalesce(sum({reporting_amount_sql()}), 0) AS amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status IN {ACTIVE} AND f.business_completed_at IS NULL
          AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        GROUP BY 1 ORDER BY 1
        """,
        [window.as_of] * sum(1 for b in UNPOSTED_AGE_BUCKETS if b[1]) + [settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, window.start, window.end, *params],
    )
    found = {r["bucket"]: r for r in rows}
    return [
        {"label": label, "min_seconds": low, "max_seconds": high, "n": found.get(i, {}).get("n", 0), "amount": _money(found.get(i, {}).get("amount", 0))}
        for i, (low, high, label) in enumerate(UNPOSTED_AGE_BUCKETS)
    ]


def invoice_lag_by_entity(window: Window) -> list[dict]:
    """Per legal entity and currency: posted, lag p50/p95, unposted count and value."""
    extra, params = window.flow_filter_sql()
    src, src_params = started_source(window, [FlowType.INVOICE_POSTING])
    entity = "coalesce(nullif(legal_entity, ''), '—')"
    rows = _all(
        f"""
        WITH src AS MATERIALIZED ({src}),
        counts AS (SELECT {entity} AS entity, currency, sum(completed)::int AS posted, sum(active_exc + active_clean)::int AS unposted
                   FROM src GROUP BY 1, 2),
        pct AS (SELECT {entity} AS entity, currency, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY v) AS p95
                FROM src, unnest(src.durations || src.ages) v GROUP BY 1, 2)
        SELECT c.entity, c.currency, c.posted, p.p50, p.p95, c.unposted
        FROM counts c LEFT JOIN pct p ON p.entity = c.entity AND p.currency = c.currency
        WHERE c.posted + c.unposted > 0
        ORDER BY 1, 2
        """,
        src_params,
    )
    amounts = {
        (r["entity"], r["currency"]): r
        for r in _all(
            f"""
            SELECT coalesce(nullif(f.legal_entity, ''), '—') AS entity, f.currency, coalesce(sum(f.amount), 0) AS unposted_amount,
                   coalesce(sum({reporting_amount_sql()}), 0) AS unposted_reporting
            FROM {FLOW_TABLE} f
            WHERE f.flow_type = %s AND f.status IN {ACTIVE} AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
            GROUP BY 1, 2
            """,
            [settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, window.start, window.end, *params],
        )
    }
    zero = {"unposted_amount": Decimal(0), "unposted_reporting": Decimal(0)}
    for r in rows:
        money = amounts.get((r["entity"], r["currency"]), zero)
        r["unposted_amount"], r["unposted_reporting"] = money["unposted_amount"], money["unposted_reporting"]
    return rows


# --- exceptions -----------------------------------------------------------------------------
def _exc_scope(window: Window) -> tuple[str, str, list]:
    """JOIN + WHERE that limit exceptions to the entity/currency filters (through their flow)."""
    if not (window.entity or window.currency):
        return "", "", []
    extra, params = window.flow_filter_sql()
    return f" JOIN {FLOW_TABLE} f ON f.id = e.flow_run_id", extra, params


def exceptions(window: Window) -> dict:
    """Open now by class/system/flow; opened and resolved in the window; mean time to resolve."""
    join, extra, params = _exc_scope(window)
    grouped = _all(
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
    moved = _exceptions_moved(window)
    return {
        "open": total,
        "by_error_class": dict(sorted(by_class.items(), key=lambda kv: -kv[1])),
        "by_system": dict(sorted(by_system.items(), key=lambda kv: -kv[1])),
        "by_flow": dict(sorted(by_flow.items(), key=lambda kv: -kv[1])),
        "opened": moved["opened"],
        "resolved": moved["resolved"],
        "mttr_seconds": _seconds(moved["mttr"]),
    }


def _exceptions_moved(window: Window) -> dict:
    """Opened and resolved in the window, mean time to resolve."""
    join, extra, params = _exc_scope(window)
    return _one(
        f"""
        SELECT count(*) FILTER (WHERE e.first_seen >= %s AND e.first_seen < %s) AS opened,
               count(*) FILTER (WHERE e.status = 'resolved' AND e.resolved_at >= %s AND e.resolved_at < %s) AS resolved,
               avg(extract(epoch FROM e.resolved_at - e.first_seen)) FILTER (WHERE e.status = 'resolved' AND e.resolved_at >= %s AND e.resolved_at < %s) AS mttr
        FROM {EXC_TABLE} e {join}
        WHERE ((e.first_seen >= %s AND e.first_seen < %s) OR (e.resolved_at >= %s AND e.resolved_at < %s)) {extra}
        """,
        [window.start, window.end] * 5 + params,
    )


def exception_age_buckets(window: Window) -> dict:
    join, extra, params = _exc_scope(window)
    age = "(%s - e.first_seen)"
    row = _one(
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


# --- SLA ------------------------------------------------------------------------------------
def _sla_due(window: Window, flow_types: list[str]) -> dict[str, dict]:
    """Per flow type: flows due in the window whose outcome is known, and those that met it."""
    if not flow_types:
        return {}
    src, src_params = due_source(window, flow_types)
    return {r["flow_type"]: r for r in _all(f"SELECT flow_type, sum(due)::int AS due, sum(met)::int AS met FROM ({src}) src GROUP BY 1", src_params)}


def sla(window: Window, flow_types: list[str] | None = None) -> dict:
    """Per flow type (all with a policy, or these): due in the window (outcome known), met,
    breached; at risk now."""
    from monitoring.models import SlaPolicy

    extra, params = window.flow_filter_sql()
    policies = SlaPolicy.objects.order_by("flow_type")
    if flow_types is not None:
        policies = policies.filter(flow_type__in=flow_types)
    policies = list(policies.values("flow_type", "target_seconds", "at_risk_pct", "objective_pct", "calendar", "month_end_target_seconds"))
    counts = _sla_due(window, [p["flow_type"] for p in policies])
    at_risk = dict(
        (r["flow_type"], r["n"])
        for r in _all(
            f"""
            SELECT f.flow_type, count(*) AS n
            FROM {FLOW_TABLE} f JOIN {SlaPolicy._meta.db_table} p ON p.flow_type = f.flow_type
            WHERE f.finished_at IS NULL AND f.status <> 'cancelled' AND f.sla_due_at > %s
              AND f.business_started_at + (f.sla_due_at - f.business_started_at) * (p.at_risk_pct / 100.0) <= %s {extra}
            GROUP BY 1
            """,
            [window.as_of, window.as_of, *params],
        )
    )
    out = {}
    for p in policies:
        c = counts.get(p["flow_type"], {"due": 0, "met": 0})
        due, met = c["due"], c["met"]
        out[p["flow_type"]] = {
            "label": FlowType(p["flow_type"]).label,
            "target_seconds": p["target_seconds"],
            "month_end_target_seconds": p["month_end_target_seconds"],
            "calendar": p["calendar"],
            "objective_pct": float(p["objective_pct"]),
            "due": due,
            "met": met,
            "breached": due - met,
            "at_risk": at_risk.get(p["flow_type"], 0),
            "compliance": _rate(met, due),
            "below_objective": due > 0 and met / due * 100 < float(p["objective_pct"]),
        }
    return out


def sla_overall(sla_rows: dict) -> dict:
    due = sum(s["due"] for s in sla_rows.values())
    met = sum(s["met"] for s in sla_rows.values())
    return {"due": due, "met": met, "breached": sum(s["breached"] for s in sla_rows.values()),
            "at_risk": sum(s["at_risk"] for s in sla_rows.values()), "compliance": _rate(met, due)}


# --- revenue at risk --------------------------------------------------------------------------
def revenue_at_risk(window: Window) -> dict:
    """Now, in reporting currency: every flow with an open exception, or unfinished past its SLA,
    counted once; plus open exceptions belonging to no flow (missing events, reconciliation
    breaks), each document once and only when no counted flow carries that document."""
    extra, params = window.flow_filter_sql()
    at_risk_flows = f"""
        SELECT f.id, f.document_number, f.legal_entity, f.currency, {reporting_amount_sql()} AS amount
        FROM {FLOW_TABLE} f
        WHERE f.id IN (
            SELECT e.flow_run_id FROM {EXC_TABLE} e WHERE e.status IN {OPEN_EXC} AND e.flow_run_id IS NOT NULL
            UNION
            SELECT g.id FROM {FLOW_TABLE} g WHERE g.finished_at IS NULL AND g.status <> 'cancelled'
               AND (g.sla_due_at < %s OR g.sla_breached)
        ) {extra}
    """
    orphan_filter = "" if not (window.entity or window.currency) else " AND false"
    row = _one(
        f"""
        WITH flows AS ({at_risk_flows}),
        orphans AS (
            SELECT DISTINCT ON (coalesce(nullif(e.document_number, ''), e.id::text)) e.revenue_at_risk AS amount
            FROM {EXC_TABLE} e
            WHERE e.flow_run_id IS NULL AND e.status IN {OPEN_EXC} {orphan_filter}
              AND NOT EXISTS (SELECT 1 FROM flows WHERE flows.document_number <> '' AND flows.document_number = e.document_number)
            ORDER BY coalesce(nullif(e.document_number, ''), e.id::text), e.revenue_at_risk DESC
        )
        SELECT (SELECT coalesce(sum(amount), 0) FROM flows) AS flow_amount, (SELECT count(*) FROM flows) AS flows,
               (SELECT coalesce(sum(amount), 0) FROM orphans) AS orphan_amount, (SELECT count(*) FROM orphans) AS orphans
        """,
        [settings.REPORTING_CURRENCY, window.as_of, *params],
    )
    total = Decimal(row["flow_amount"]) + Decimal(row["orphan_amount"])
    return {"currency": settings.REPORTING_CURRENCY, "amount": _money(total), "flows": row["flows"], "documents_without_flow": row["orphans"]}


# --- overview money figures -----------------------------------------------------------------
def dollars_in_flight(window: Window) -> dict:
    """Value of orders not yet activated and invoices not yet posted, now (reporting currency)."""
    extra, params = window.flow_filter_sql()
    rows = _all(
        f"""
        SELECT f.flow_type, count(*) AS n, coalesce(sum({reporting_amount_sql()}), 0) AS amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type IN (%s, %s) AND f.status IN {ACTIVE} {extra}
        GROUP BY 1
        """,
        [settings.REPORTING_CURRENCY, FlowType.ORDER_ACTIVATION, FlowType.INVOICE_POSTING, *params],
    )
    by = {r["flow_type"]: r for r in rows}
    orders, invoices = by.get(FlowType.ORDER_ACTIVATION, {}), by.get(FlowType.INVOICE_POSTING, {})
    total = Decimal(orders.get("amount", 0)) + Decimal(invoices.get("amount", 0))
    return {
        "currency": settings.REPORTING_CURRENCY, "amount": _money(total),
        "orders": orders.get("n", 0), "orders_amount": _money(orders.get("amount", 0)),
        "invoices": invoices.get("n", 0), "invoices_amount": _money(invoices.get("amount", 0)),
    }


def unbilled_arr(window: Window) -> dict:
    """Active subscriptions with no invoice yet: their ARR in reporting currency."""
    from sync.models import Customer, Invoice, LegalEntity, Subscription

    entity_sql, params = "", []
    if window.entity:
        entity_sql = f" AND c.legal_entity_id IN (SELECT le.id FROM {LegalEntity._meta.db_table} le WHERE le.code = %s)"
        params.append(window.entity)
    if window.currency:
        entity_sql += " AND s.currency = %s"
        params.append(window.currency)
    row = _one(
        f"""
        SELECT count(*) AS n, coalesce(sum(s.arr * CASE WHEN s.currency = %s THEN 1 ELSE coalesce(
                 (SELECT r.rate_to_reporting FROM {RATE_TABLE} r WHERE r.currency = s.currency AND r.valid_from <= %s::date
                   ORDER BY r.valid_from DESC LIMIT 1), 1) END), 0) AS amount
        FROM {Subscription._meta.db_table} s JOIN {Customer._meta.db_table} c ON c.id = s.customer_id
        WHERE s.status = 'active'
          AND NOT EXISTS (SELECT 1 FROM {Invoice._meta.db_table} i WHERE i.subscription_id = s.id) {entity_sql}
        """,
        [settings.REPORTING_CURRENCY, window.as_of, *params],
    )
    return {"currency": settings.REPORTING_CURRENCY, "amount": _money(row["amount"]), "subscriptions": row["n"]}


def close_readiness(window: Window) -> dict:
    """Month-end close for the month holding the window's end: invoices finalized in it but
    not posted, and open reconciliation breaks. Ready when both are zero."""
    tz = timezone.get_current_timezone()
    local_end = (window.end - timedelta(microseconds=1)).astimezone(tz)
    month_start = local_end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    extra, params = window.flow_filter_sql()
    inv = _one(
        f"""
        SELECT count(*) AS n, coalesce(sum({reporting_amount_sql()}), 0) AS amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status IN {ACTIVE} AND f.business_completed_at IS NULL
          AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        """,
        [settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, month_start, next_month, *params],
    )
    breaks = _one(
        f"SELECT count(*) AS n, coalesce(sum(e.revenue_at_risk), 0) AS amount FROM {EXC_TABLE} e WHERE e.status IN {OPEN_EXC} AND e.error_class = 'reconciliation'",
        [],
    )
    return {
        "period_start": month_start, "period_end": next_month, "label": month_start.strftime("%B %Y"),
        "unposted": inv["n"], "unposted_amount": _money(inv["amount"]),
        "open_breaks": breaks["n"], "breaks_amount": _money(breaks["amount"]),
        "currency": settings.REPORTING_CURRENCY, "ready": inv["n"] == 0 and breaks["n"] == 0,
    }


# --- retries, duplicates ----------------------------------------------------------------------
def retries(window: Window) -> dict:
    """Retries (attempts beyond the first) of steps started in the window, by system and class."""
    rows = _all(
        f"""
        SELECT s.system, coalesce(nullif(s.error_class, ''), 'none') AS error_class, sum(s.attempts - 1) AS n
        FROM {STEP_TABLE} s
        WHERE s.attempts > 1 AND s.started_at >= %s AND s.started_at < %s
        GROUP BY 1, 2 ORDER BY 3 DESC
        """,
        [window.start, window.end],
    )
    by_system: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for r in rows:
        by_system[r["system"]] = by_system.get(r["system"], 0) + int(r["n"])
        by_class[r["error_class"]] = by_class.get(r["error_class"], 0) + int(r["n"])
    return {"total": sum(by_system.values()), "by_system": by_system, "by_error_class": by_class}


def duplicate_rate(window: Window) -> dict:
    """Customer conflicts detected ÷ customers synced, in the window."""
    src, src_params = started_source(window, [FlowType.CUSTOMER_SYNC])
    row = _one(
        f"""
        SELECT (SELECT count(*) FROM {EXC_TABLE} e WHERE e.flow_type = %s AND e.error_class IN ('duplicate', 'conflict')
                  AND e.first_seen >= %s AND e.first_seen < %s) AS conflicts,
               (SELECT coalesce(sum(n), 0)::int FROM ({src}) src) AS synced
        """,
        [FlowType.CUSTOMER_SYNC, window.start, window.end, *src_params],
    )
    return {"conflicts": row["conflicts"], "customers_synced": row["synced"], "rate": _rate(row["conflicts"], row["synced"])}


# --- daily series (charts; the same definitions per day) ----------------------------------
def _day(column: str) -> str:
    return f"date_trunc('day', {column} AT TIME ZONE %s)::date"


def daily_cycle_time(window: Window) -> list[dict]:
    src, src_params = completed_source(window, [FlowType.ORDER_ACTIVATION])
    return _all(
        f"""
        SELECT {_day('src.ts')} AS day, count(d) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY d) AS p90
        FROM ({src}) src, unnest(src.durations) d
        GROUP BY 1 ORDER BY 1
        """,
        [window.tz, *src_params],
    )


def daily_invoice_lag(window: Window) -> list[dict]:
    src, src_params = started_source(window, [FlowType.INVOICE_POSTING])
    return _all(
        f"""
        WITH src AS MATERIALIZED ({src})
        SELECT {_day('v.ts')} AS day, count(*) AS n, count(*) FILTER (WHERE v.unfinished) AS unposted,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY v.d) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY v.d) AS p95
        FROM ({_values_sql(with_ages=True)}) v
        GROUP BY 1 ORDER BY 1
        """,
        [*src_params, window.tz],
    )


def daily_sla(window: Window) -> list[dict]:
    """Per day of due time and flow type: due (outcome known) and met."""
    from monitoring.models import SlaPolicy

    types = list(SlaPolicy.objects.values_list("flow_type", flat=True)) or [t for t, _ in FlowType.choices]
    src, src_params = due_source(window, types)
    return _all(
        f"""
        SELECT {_day('src.ts')} AS day, src.flow_type, sum(src.due)::int AS due, sum(src.met)::int AS met
        FROM ({src}) src
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        [window.tz, *src_params],
    )


def daily_exceptions(window: Window) -> list[dict]:
    join, extra, params = _exc_scope(window)
    return _all(
        f"""
        SELECT day, sum(opened)::int AS opened, sum(resolved)::int AS resolved FROM (
            SELECT {_day('e.first_seen')} AS day, 1 AS opened, 0 AS resolved FROM {EXC_TABLE} e {join}
             WHERE e.first_seen >= %s AND e.first_seen < %s {extra}
            UNION ALL
            SELECT {_day('e.resolved_at')}, 0, 1 FROM {EXC_TABLE} e {join}
             WHERE e.status = 'resolved' AND e.resolved_at >= %s AND e.resolved_at < %s {extra}
        ) t GROUP BY day ORDER BY day
        """,
        [window.tz, window.start, window.end, *params, window.tz, window.start, window.end, *params],
    )


def daily_outcomes(flow_types: list[str], window: Window) -> list[dict]:
    """Per day started: first-pass success, completed after an exception, still open, cancelled."""
    src, src_params = started_source(window, list(flow_types))
    return _all(
        f"""
        SELECT {_day('src.ts')} AS day, sum(n)::int AS started,
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
    return [{"day": r["day"], "started": r["started"], "with_exception": r["with_exception"], "rate": _rate(r["with_exception"], r["started"])}
            for r in daily_outcomes([FlowType.AMENDMENT], window)]


# --- the API's answer --------------------------------------------------------------------------
def kpi_summary(window: Window) -> dict:
    return {
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat(), "entity": window.entity or None, "currency": window.currency or None},
        "order_cycle_time": order_cycle_time(window),
        "amendments": amendments(window),
        "invoice_sync_lag": invoice_sync_lag(window),
        "exceptions": exceptions(window),
        "sla": sla(window),
        "revenue_at_risk": revenue_at_risk(window),
        "retries": retries(window),
        "duplicate_rate": duplicate_rate(window),
        "renewal_accuracy": renewal_accuracy(window),
    }


def kpi_previous_basis(window: Window) -> dict:
    """Only what the Overview's tiles compare with: the window-dependent figures (no "now"
    lists, no money), with the same definitions as kpi_trend_basis."""
    from monitoring.models import SlaPolicy

    cycle, lag = _cycle_percentiles(window), _lag_percentiles(window)
    due = _sla_due(window, list(SlaPolicy.objects.values_list("flow_type", flat=True)))
    due_n, met_n = sum(r["due"] for r in due.values()), sum(r["met"] for r in due.values())
    return {
        "order_cycle_time": {"count": cycle["count"], "p50_seconds": _seconds(cycle["p50"]), "p90_seconds": _seconds(cycle["p90"])},
        "invoice_sync_lag": {"posted": lag["posted"], "p50_seconds": _seconds(lag["p50"]), "p95_seconds": _seconds(lag["p95"])},
        "sla_overall": {"due": due_n, "met": met_n, "breached": due_n - met_n, "compliance": _rate(met_n, due_n)},
        "exceptions": {"opened": _exceptions_moved(window)["opened"]},
        "amendments": amendments(window),
        "renewal_accuracy": renewal_accuracy(window),
    }


def kpi_trend_basis(window: Window) -> dict:
    """The figures the Overview compares with the previous period (fewer queries than kpi_summary)."""
    sla_rows = sla(window)
    return {
        "order_cycle_time": order_cycle_time(window),
        "amendments": amendments(window),
        "invoice_sync_lag": invoice_sync_lag(window),
        "exceptions": exceptions(window),
        "sla": sla_rows,
        "sla_overall": sla_overall(sla_rows),
        "renewal_accuracy": renewal_accuracy(window),
    }
