"""The SQL every KPI shares: how rows are fetched, the status lists (from the models' own
definitions), table names, a flow's amount in the reporting currency, and the viewer's local day."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

from sync.models import CurrencyRate, FlowRun, FlowStep, SyncException


def sql_list(values) -> str:
    """Status values as an SQL list literal: ('pending','running')."""
    return "(" + ",".join(f"'{value}'" for value in values) + ")"


ACTIVE = sql_list(FlowRun.ACTIVE_STATUSES)  # unsettled flow runs: their figures depend on "now"
SETTLED = sql_list((FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED))
OPEN_EXC = sql_list(SyncException.OPEN_STATUSES)
CENT = Decimal("0.01")

FLOW_TABLE = FlowRun._meta.db_table
STEP_TABLE = FlowStep._meta.db_table
EXC_TABLE = SyncException._meta.db_table
RATE_TABLE = CurrencyRate._meta.db_table
DURATION = "extract(epoch FROM f.business_completed_at - f.business_started_at)"


def fetch_one(sql: str, params: list) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        return dict(zip([c.name for c in cursor.description], row))


def fetch_all(sql: str, params: list) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def round_seconds(value) -> float | None:
    return None if value is None else round(float(value), 1)


def rate(numerator: int, denominator: int) -> float | None:
    return None if not denominator else round(numerator / denominator, 4)


def cents(value) -> str:
    return str(Decimal(value or 0).quantize(CENT))


def reporting_amount_sql(alias: str = "f") -> str:
    """A flow's amount in the reporting currency: the engine's `amount_reporting`, or, when the
    engine could not convert, the amount × the latest CurrencyRate on or before the flow's day; NULL
    (left out of sums) when there is none — never 1:1."""
    return f"""coalesce(nullif({alias}.amount_reporting, 0), {alias}.amount * coalesce(
        CASE WHEN {alias}.currency IN ('', %s) THEN 1 END,
        (SELECT r.rate_to_reporting FROM {RATE_TABLE} r WHERE r.currency = {alias}.currency
           AND r.valid_from <= ({alias}.business_started_at)::date ORDER BY r.valid_from DESC LIMIT 1)))"""


def local_day(column: str) -> str:
    """The column's day in the viewer's time zone (the zone is the next parameter)."""
    return f"date_trunc('day', {column} AT TIME ZONE %s)::date"
