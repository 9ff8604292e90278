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
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

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


# --- order cycle time -----------------------------------------------------------------------
def order_cycle_time(window: Window) -> dict:
    """activated_at − closed_won_at of order activations completed in the window."""
    extra, params = window.flow_filter_sql()
    row = _one(
        f"""
        SELECT count(*) AS count,
               percentile_cont(0.5)  WITHIN GROUP (ORDER BY {DURATION}) AS p50,
               percentile_cont(0.9)  WITHIN GROUP (ORDER BY {DURATION}) AS p90,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY {DURATION}) AS p95
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status = 'completed'
          AND f.business_completed_at >= %s AND f.business_completed_at < %s {extra}
        """,
        [FlowType.ORDER_ACTIVATION, window.start, window.end, *params],
    )
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
    return _all(
        f"""
        SELECT coalesce(nullif(f.legal_entity, ''), '—') AS entity,
               count(*) FILTER (WHERE f.status = 'completed' AND f.business_completed_at >= %s AND f.business_completed_at < %s) AS activated,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {DURATION}) FILTER (WHERE f.status = 'completed' AND f.business_completed_at >= %s AND f.business_completed_at < %s) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY {DURATION}) FILTER (WHERE f.status = 'completed' AND f.business_completed_at >= %s AND f.business_completed_at < %s) AS p90,
               count(*) FILTER (WHERE f.status IN {ACTIVE}) AS in_flight
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND ((f.business_completed_at >= %s AND f.business_completed_at < %s) OR f.status IN {ACTIVE}) {extra}
        GROUP BY 1 ORDER BY 2 DESC, 1
        """,
        [window.start, window.end] * 3 + [FlowType.ORDER_ACTIVATION, window.start, window.end, *params],
    )


CYCLE_BUCKETS = [300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400]  # seconds: 5m … 1d
LAG_BUCKETS = [300, 900, 1800, 3600, 7200, 14400, 86400, 259200]  # 5m … 3d


def bucket_labels(edges: list[int]) -> list[tuple[int | None, int | None]]:
    """[(lower, upper)] for width_bucket's 0..len(edges) results."""
    bounds = [0, *edges, None]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def duration_histogram(flow_type: str, window: Window, edges: list[int], *, include_unfinished: bool = False) -> list[dict]:
    """Counts per duration bucket; the invoice lag counts unposted invoices with their age."""
    extra, params = window.flow_filter_sql()
    if include_unfinished:  # invoices: finalized in the window, unposted at their age
        value = "extract(epoch FROM coalesce(f.business_completed_at, %s) - f.business_started_at)"
        where = "f.status <> 'cancelled' AND f.business_started_at >= %s AND f.business_started_at < %s"
        vparams = [window.as_of]
    else:  # orders: completed in the window
        value, where, vparams = DURATION, "f.status = 'completed' AND f.business_completed_at >= %s AND f.business_completed_at < %s", []
    edge_sql = "ARRAY[" + ",".join(str(float(e)) for e in edges) + "]::float8[]"
    rows = _all(
        f"""
        SELECT width_bucket({value}, {edge_sql}) AS bucket,
               count(*) AS n, count(*) FILTER (WHERE f.business_completed_at IS NULL) AS unfinished
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND {where} {extra}
        GROUP BY 1 ORDER BY 1
        """,
        [*vparams, flow_type, window.start, window.end, *params],
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
        WHERE f.flow_type = %s AND f.status = 'completed' AND f.business_completed_at >= %s AND f.business_completed_at < %s {extra}
        ORDER BY {DURATION} DESC, f.id LIMIT %s
        """,
        [FlowType.ORDER_ACTIVATION, window.start, window.end, *params, limit],
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
    extra, params = window.flow_filter_sql()
    return _one(
        f"""
        SELECT count(*) AS started,
               count(*) FILTER (WHERE f.had_exception) AS with_exception,
               count(*) FILTER (WHERE f.status = 'completed') AS completed,
               count(*) FILTER (WHERE f.status = 'completed' AND NOT f.had_exception) AS first_pass
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        """,
        [flow_type, window.start, window.end, *params],
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
def invoice_sync_lag(window: Window) -> dict:
    """posted_at − finalized_at for invoices finalized in the window; unposted ones count with their age."""
    extra, params = window.flow_filter_sql()
    lag = "extract(epoch FROM coalesce(f.business_completed_at, %s) - f.business_started_at)"
    row = _one(
        f"""
        SELECT count(*) FILTER (WHERE f.business_completed_at IS NOT NULL) AS posted,
               count(*) FILTER (WHERE f.business_completed_at IS NULL) AS unposted,
               percentile_cont(0.5)  WITHIN GROUP (ORDER BY {lag}) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY {lag}) AS p95,
               max(extract(epoch FROM %s - f.business_started_at)) FILTER (WHERE f.business_completed_at IS NULL) AS oldest_unposted,
               coalesce(sum({reporting_amount_sql()}) FILTER (WHERE f.business_completed_at IS NULL), 0) AS unposted_amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status <> 'cancelled'
          AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        """,
        [window.as_of, window.as_of, window.as_of, settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, window.start, window.end, *params],
    )
    return {
        "posted": row["posted"],
        "p50_seconds": _seconds(row["p50"]),
        "p95_seconds": _seconds(row["p95"]),
        "unposted": row["unposted"],
        "oldest_unposted_seconds": _seconds(row["oldest_unposted"]),
        "unposted_amount": {"currency": settings.REPORTING_CURRENCY, "amount": _money(row["unposted_amount"])},
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
    lag = "extract(epoch FROM coalesce(f.business_completed_at, %s) - f.business_started_at)"
    return _all(
        f"""
        SELECT coalesce(nullif(f.legal_entity, ''), '—') AS entity, f.currency,
               count(*) FILTER (WHERE f.business_completed_at IS NOT NULL) AS posted,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {lag}) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY {lag}) AS p95,
               count(*) FILTER (WHERE f.business_completed_at IS NULL) AS unposted,
               coalesce(sum(f.amount) FILTER (WHERE f.business_completed_at IS NULL), 0) AS unposted_amount,
               coalesce(sum({reporting_amount_sql()}) FILTER (WHERE f.business_completed_at IS NULL), 0) AS unposted_reporting
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status <> 'cancelled' AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        [window.as_of, window.as_of, settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, window.start, window.end, *params],
    )


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
    moved = _one(
        f"""
        SELECT count(*) FILTER (WHERE e.first_seen >= %s AND e.first_seen < %s) AS opened,
               count(*) FILTER (WHERE e.status = 'resolved' AND e.resolved_at >= %s AND e.resolved_at < %s) AS resolved,
               avg(extract(epoch FROM e.resolved_at - e.first_seen)) FILTER (WHERE e.status = 'resolved' AND e.resolved_at >= %s AND e.resolved_at < %s) AS mttr
        FROM {EXC_TABLE} e {join}
        WHERE ((e.first_seen >= %s AND e.first_seen < %s) OR (e.resolved_at >= %s AND e.resolved_at < %s)) {extra}
        """,
        [window.start, window.end] * 5 + params,
    )
    return {
        "open": total,
        "by_error_class": dict(sorted(by_class.items(), key=lambda kv: -kv[1])),
        "by_system": dict(sorted(by_system.items(), key=lambda kv: -kv[1])),
        "by_flow": dict(sorted(by_flow.items(), key=lambda kv: -kv[1])),
        "opened": moved["opened"],
        "resolved": moved["resolved"],
        "mttr_seconds": _seconds(moved["mttr"]),
    }


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
def sla(window: Window) -> dict:
    """Per flow type: due in the window (outcome known), met, breached; at risk now."""
    from monitoring.models import SlaPolicy

    extra, params = window.flow_filter_sql()
    decided = "(f.business_completed_at IS NOT NULL OR f.sla_due_at <= %s)"
    met = "(f.business_completed_at IS NOT NULL AND f.business_completed_at <= f.sla_due_at)"
    rows = _all(
        f"""
        SELECT p.flow_type, p.target_seconds, p.at_risk_pct, p.objective_pct, p.calendar, p.month_end_target_seconds,
               count(f.id) FILTER (WHERE {decided}) AS due,
               count(f.id) FILTER (WHERE {decided} AND {met}) AS met,
               count(f.id) FILTER (WHERE {decided} AND NOT {met}) AS breached
        FROM {SlaPolicy._meta.db_table} p
        LEFT JOIN {FLOW_TABLE} f ON f.flow_type = p.flow_type AND f.status <> 'cancelled'
             AND f.sla_due_at >= %s AND f.sla_due_at < %s {extra}
        GROUP BY p.flow_type, p.target_seconds, p.at_risk_pct, p.objective_pct, p.calendar, p.month_end_target_seconds
        ORDER BY p.flow_type
        """,
        [window.as_of] * 3 + [window.start, window.end, *params],
    )
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
    return {
        r["flow_type"]: {
            "label": FlowType(r["flow_type"]).label,
            "target_seconds": r["target_seconds"],
            "month_end_target_seconds": r["month_end_target_seconds"],
            "calendar": r["calendar"],
            "objective_pct": float(r["objective_pct"]),
            "due": r["due"],
            "met": r["met"],
            "breached": r["breached"],
            "at_risk": at_risk.get(r["flow_type"], 0),
            "compliance": _rate(r["met"], r["due"]),
            "below_objective": r["due"] > 0 and r["met"] / r["due"] * 100 < float(r["objective_pct"]),
        }
        for r in rows
    }


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
    row = _one(
        f"""
        SELECT (SELECT count(*) FROM {EXC_TABLE} e WHERE e.flow_type = %s AND e.error_class IN ('duplicate', 'conflict')
                  AND e.first_seen >= %s AND e.first_seen < %s) AS conflicts,
               (SELECT count(*) FROM {FLOW_TABLE} f WHERE f.flow_type = %s AND f.business_started_at >= %s AND f.business_started_at < %s) AS synced
        """,
        [FlowType.CUSTOMER_SYNC, window.start, window.end, FlowType.CUSTOMER_SYNC, window.start, window.end],
    )
    return {"conflicts": row["conflicts"], "customers_synced": row["synced"], "rate": _rate(row["conflicts"], row["synced"])}


# --- daily series (charts; the same definitions per day) ----------------------------------
def _day(column: str) -> str:
    return f"date_trunc('day', {column} AT TIME ZONE %s)::date"


def daily_cycle_time(window: Window) -> list[dict]:
    extra, params = window.flow_filter_sql()
    return _all(
        f"""
        SELECT {_day('f.business_completed_at')} AS day, count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {DURATION}) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY {DURATION}) AS p90
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status = 'completed' AND f.business_completed_at >= %s AND f.business_completed_at < %s {extra}
        GROUP BY 1 ORDER BY 1
        """,
        [window.tz, FlowType.ORDER_ACTIVATION, window.start, window.end, *params],
    )


def daily_invoice_lag(window: Window) -> list[dict]:
    extra, params = window.flow_filter_sql()
    lag = "extract(epoch FROM coalesce(f.business_completed_at, %s) - f.business_started_at)"
    return _all(
        f"""
        SELECT {_day('f.business_started_at')} AS day, count(*) AS n,
               count(*) FILTER (WHERE f.business_completed_at IS NULL) AS unposted,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {lag}) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY {lag}) AS p95
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status <> 'cancelled' AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        GROUP BY 1 ORDER BY 1
        """,
        [window.tz, window.as_of, window.as_of, FlowType.INVOICE_POSTING, window.start, window.end, *params],
    )


def daily_sla(window: Window) -> list[dict]:
    """Per day of due time and flow type: due (outcome known) and met."""
    extra, params = window.flow_filter_sql()
    return _all(
        f"""
        SELECT {_day('f.sla_due_at')} AS day, f.flow_type,
               count(*) AS due,
               count(*) FILTER (WHERE f.business_completed_at IS NOT NULL AND f.business_completed_at <= f.sla_due_at) AS met
        FROM {FLOW_TABLE} f
        WHERE f.status <> 'cancelled' AND f.sla_due_at >= %s AND f.sla_due_at < %s
          AND (f.business_completed_at IS NOT NULL OR f.sla_due_at <= %s) {extra}
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        [window.tz, window.start, window.end, window.as_of, *params],
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
    extra, params = window.flow_filter_sql()
    return _all(
        f"""
        SELECT {_day('f.business_started_at')} AS day, count(*) AS started,
               count(*) FILTER (WHERE f.status = 'completed' AND NOT f.had_exception) AS first_pass,
               count(*) FILTER (WHERE f.status = 'completed' AND f.had_exception) AS recovered,
               count(*) FILTER (WHERE f.status IN {ACTIVE} AND f.had_exception) AS failing,
               count(*) FILTER (WHERE f.status IN {ACTIVE} AND NOT f.had_exception) AS in_flight,
               count(*) FILTER (WHERE f.status = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE f.had_exception) AS with_exception
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = ANY(%s) AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        GROUP BY 1 ORDER BY 1
        """,
        [window.tz, list(flow_types), window.start, window.end, *params],
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
