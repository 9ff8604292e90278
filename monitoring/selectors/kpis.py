"""KPI selectors: the definitions in DESIGN.md, computed set-based in PostgreSQL.

Each function takes a window [start, end) and returns plain dicts; the API and the
screens both call these, so they cannot disagree. Percentiles use percentile_cont
in the database; no function loads rows into Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from sync.models import FlowRun, FlowStep, FlowType, SyncException


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    entity: str = ""
    currency: str = ""

    @classmethod
    def last_days(cls, days: int = 30, **kwargs) -> "Window":
        end = timezone.now()
        return cls(start=end - timedelta(days=days), end=end, **kwargs)

    def previous(self) -> "Window":
        span = self.end - self.start
        return Window(self.start - span, self.start, self.entity, self.currency)

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


FLOW_TABLE = FlowRun._meta.db_table
EXC_TABLE = SyncException._meta.db_table


def order_cycle_time(window: Window) -> dict:
    """activated_at − closed_won_at of order activations completed in the window."""
    extra, params = window.flow_filter_sql()
    row = _one(
        f"""
        SELECT count(*) AS count,
               percentile_cont(0.5)  WITHIN GROUP (ORDER BY extract(epoch FROM f.business_completed_at - f.business_started_at)) AS p50,
               percentile_cont(0.9)  WITHIN GROUP (ORDER BY extract(epoch FROM f.business_completed_at - f.business_started_at)) AS p90,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM f.business_completed_at - f.business_started_at)) AS p95
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status = 'completed'
          AND f.business_completed_at >= %s AND f.business_completed_at < %s {extra}
        """,
        [FlowType.ORDER_ACTIVATION, window.start, window.end, *params],
    )
    in_flight = _one(
        f"""
        SELECT count(*) AS n, max(extract(epoch FROM now() - f.business_started_at)) AS oldest
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status IN ('pending','running','waiting','parked','failed') {extra}
        """,
        [FlowType.ORDER_ACTIVATION, *params],
    )
    return {
        "count": row["count"],
        "p50_seconds": _seconds(row["p50"]),
        "p90_seconds": _seconds(row["p90"]),
        "p95_seconds": _seconds(row["p95"]),
        "in_flight": in_flight["n"],
        "oldest_in_flight_seconds": _seconds(in_flight["oldest"]),
    }


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
    row = _started_outcomes(FlowType.RENEWAL, window)
    return {"due": row["started"], "completed_without_exception": row["first_pass"], "accuracy": _rate(row["first_pass"], row["started"])}


def invoice_sync_lag(window: Window) -> dict:
    """posted_at − finalized_at for invoices finalized in the window; unposted ones count with their age."""
    extra, params = window.flow_filter_sql()
    lag = "extract(epoch FROM coalesce(f.business_completed_at, now()) - f.business_started_at)"
    row = _one(
        f"""
        SELECT count(*) FILTER (WHERE f.business_completed_at IS NOT NULL) AS posted,
               count(*) FILTER (WHERE f.business_completed_at IS NULL AND f.status <> 'cancelled') AS unposted,
               percentile_cont(0.5)  WITHIN GROUP (ORDER BY {lag}) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY {lag}) AS p95,
               max({lag}) FILTER (WHERE f.business_completed_at IS NULL AND f.status <> 'cancelled') AS oldest_unposted,
               coalesce(sum(f.amount_reporting) FILTER (WHERE f.business_completed_at IS NULL AND f.status <> 'cancelled'), 0) AS unposted_amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status <> 'cancelled'
          AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        """,
        [FlowType.INVOICE_POSTING, window.start, window.end, *params],
    )
    return {
        "posted": row["posted"],
        "p50_seconds": _seconds(row["p50"]),
        "p95_seconds": _seconds(row["p95"]),
        "unposted": row["unposted"],
        "oldest_unposted_seconds": _seconds(row["oldest_unposted"]),
        "unposted_amount": {"currency": settings.REPORTING_CURRENCY, "amount": str(row["unposted_amount"])},
    }


def exceptions(window: Window) -> dict:
    """Open now by class/system/flow; opened and resolved in the window; mean time to resolve."""
    grouped = _all(
        f"""
        SELECT error_class, system, flow_type, count(*) AS n
        FROM {EXC_TABLE} WHERE status IN ('open','retrying')
        GROUP BY GROUPING SETS ((error_class), (system), (flow_type), ())
        """,
        [],
    )
    by_class, by_system, by_flow, total = {}, {}, {}, 0
    for row in grouped:
        if row["error_class"] is not None:
            by_class[row["error_class"]] = row["n"]
        elif row["system"] is not None:
            by_system[row["system"]] = row["n"]
        elif row["flow_type"] is not None:
            by_flow[row["flow_type"]] = row["n"]
        else:
            total = row["n"]
    flow_blank = sum(r["n"] for r in grouped if r["flow_type"] == "")
    if flow_blank:
        by_flow.pop("", None)
        by_flow["(none)"] = flow_blank
    moved = _one(
        f"""
        SELECT count(*) FILTER (WHERE first_seen >= %s AND first_seen < %s) AS opened,
               count(*) FILTER (WHERE resolved_at >= %s AND resolved_at < %s) AS resolved,
               avg(extract(epoch FROM resolved_at - first_seen)) FILTER (WHERE resolved_at >= %s AND resolved_at < %s) AS mttr
        FROM {EXC_TABLE}
        WHERE (first_seen >= %s AND first_seen < %s) OR (resolved_at >= %s AND resolved_at < %s)
        """,
        [window.start, window.end] * 5,
    )
    ages = _one(
        f"""
        SELECT count(*) FILTER (WHERE now() - first_seen < interval '1 hour') AS lt_1h,
               count(*) FILTER (WHERE now() - first_seen >= interval '1 hour' AND now() - first_seen < interval '1 day') AS lt_1d,
               count(*) FILTER (WHERE now() - first_seen >= interval '1 day' AND now() - first_seen < interval '7 days') AS lt_7d,
               count(*) FILTER (WHERE now() - first_seen >= interval '7 days') AS gte_7d
        FROM {EXC_TABLE} WHERE status IN ('open','retrying')
        """,
        [],
    )
    return {
        "open": total,
        "by_error_class": by_class,
        "by_system": by_system,
        "by_flow": by_flow,
        "age_buckets": {"<1h": ages["lt_1h"], "1h-1d": ages["lt_1d"], "1d-7d": ages["lt_7d"], ">=7d": ages["gte_7d"]},
        "opened": moved["opened"],
        "resolved": moved["resolved"],
        "mttr_seconds": _seconds(moved["mttr"]),
    }


def sla(window: Window) -> dict:
    """Per flow type: due in window, met, breached, at risk (running past at_risk_pct of target)."""
    from monitoring.models import SlaPolicy

    extra, params = window.flow_filter_sql()
    rows = _all(
        f"""
        SELECT p.flow_type, p.target_seconds, p.at_risk_pct, p.objective_pct,
          count(f.id) FILTER (WHERE f.sla_due_at >= %s AND f.sla_due_at < %s AND (f.sla_due_at <= now() OR f.finished_at IS NOT NULL)) AS due,
          count(f.id) FILTER (WHERE f.sla_due_at >= %s AND f.sla_due_at < %s AND f.status = 'completed' AND f.business_completed_at <= f.sla_due_at) AS met,
          count(f.id) FILTER (WHERE f.sla_due_at >= %s AND f.sla_due_at < %s AND (
                 (f.business_completed_at IS NOT NULL AND f.business_completed_at > f.sla_due_at)
              OR (f.business_completed_at IS NULL AND f.status <> 'cancelled' AND now() > f.sla_due_at))) AS breached,
          count(f.id) FILTER (WHERE f.finished_at IS NULL AND f.status <> 'cancelled' AND now() <= f.sla_due_at
              AND now() >= f.business_started_at + make_interval(secs => p.target_seconds * p.at_risk_pct / 100.0)) AS at_risk
        FROM {SlaPolicy._meta.db_table} p
        LEFT JOIN {FLOW_TABLE} f ON f.flow_type = p.flow_type
             AND ((f.sla_due_at >= %s AND f.sla_due_at < %s) OR (f.finished_at IS NULL AND f.status <> 'cancelled')) {extra}
        GROUP BY p.flow_type, p.target_seconds, p.at_risk_pct, p.objective_pct
        ORDER BY p.flow_type
        """,
        [window.start, window.end] * 4 + params,
    )
    return {
        r["flow_type"]: {
            "label": FlowType(r["flow_type"]).label,
            "target_seconds": r["target_seconds"],
            "objective_pct": float(r["objective_pct"]),
            "due": r["due"],
            "met": r["met"],
            "breached": r["breached"],
            "at_risk": r["at_risk"],
            "compliance": _rate(r["met"], r["due"]),
        }
        for r in rows
    }


def revenue_at_risk(window: Window | None = None) -> dict:
    """Sum (reporting currency) over flows with an open exception or a breached SLA, plus
    open exceptions that belong to no flow (e.g. reconciliation breaks). Each flow counts once."""
    extra, params = (window.flow_filter_sql() if window else ("", []))
    row = _one(
        f"""
        SELECT coalesce(sum(f.amount_reporting), 0) AS flows, count(*) AS n
        FROM {FLOW_TABLE} f
        WHERE f.status IN ('pending','running','waiting','parked','failed')
          AND (f.sla_breached OR (f.sla_due_at IS NOT NULL AND f.sla_due_at < now())
               OR EXISTS (SELECT 1 FROM {EXC_TABLE} e WHERE e.flow_run_id = f.id AND e.status IN ('open','retrying'))) {extra}
        """,
        params,
    )
    orphan = _one(
        f"SELECT coalesce(sum(revenue_at_risk), 0) AS amount FROM {EXC_TABLE} WHERE flow_run_id IS NULL AND status IN ('open','retrying')",
        [],
    )
    total = Decimal(row["flows"]) + Decimal(orphan["amount"])
    return {"currency": settings.REPORTING_CURRENCY, "amount": str(total.quantize(Decimal("0.01"))), "flows": row["n"]}


def retries(window: Window) -> dict:
    rows = _all(
        f"""
        SELECT s.system, coalesce(nullif(s.error_class, ''), 'none') AS error_class, sum(greatest(s.attempts - 1, 0)) AS n
        FROM {FlowStep._meta.db_table} s
        WHERE s.started_at >= %s AND s.started_at < %s AND s.attempts > 1
        GROUP BY s.system, 2
        """,
        [window.start, window.end],
    )
    total = sum(int(r["n"]) for r in rows)
    by_system: dict[str, int] = {}
    for r in rows:
        by_system[r["system"]] = by_system.get(r["system"], 0) + int(r["n"])
    return {"total": total, "by_system": by_system, "by_system_and_class": [{**r, "n": int(r["n"])} for r in rows]}


def duplicate_rate(window: Window) -> dict:
    conflicts = SyncException.objects.filter(
        flow_type=FlowType.CUSTOMER_SYNC, error_class__in=["duplicate", "conflict"], first_seen__gte=window.start, first_seen__lt=window.end
    ).count()
    synced = FlowRun.objects.filter(flow_type=FlowType.CUSTOMER_SYNC, business_started_at__gte=window.start, business_started_at__lt=window.end).count()
    return {"conflicts": conflicts, "customers_synced": synced, "rate": _rate(conflicts, synced)}


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
