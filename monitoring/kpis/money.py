"""Money figures, now, in the reporting currency: revenue at risk (each flow once: open exception
or breached SLA, plus open exceptions that belong to no flow, each document once), dollars in
flight, unbilled ARR, and month-end close readiness."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from sync.models import Customer, FlowType, Invoice, LegalEntity, Subscription

from .sql import ACTIVE, EXC_TABLE, FLOW_TABLE, OPEN_EXC, RATE_TABLE, cents, fetch_all, fetch_one, reporting_amount_sql
from .window import Window


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
    row = fetch_one(
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
    return {"currency": settings.REPORTING_CURRENCY, "amount": cents(total), "flows": row["flows"], "documents_without_flow": row["orphans"]}


def dollars_in_flight(window: Window) -> dict:
    """Value of orders not yet activated and invoices not yet posted, now (reporting currency)."""
    extra, params = window.flow_filter_sql()
    rows = fetch_all(
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
        "currency": settings.REPORTING_CURRENCY,
        "amount": cents(total),
        "orders": orders.get("n", 0),
        "orders_amount": cents(orders.get("amount", 0)),
        "invoices": invoices.get("n", 0),
        "invoices_amount": cents(invoices.get("amount", 0)),
    }


def unbilled_arr(window: Window) -> dict:
    """Active subscriptions with no invoice yet: their ARR in reporting currency."""
    entity_sql, params = "", []
    if window.entity:
        entity_sql = f" AND c.legal_entity_id IN (SELECT le.id FROM {LegalEntity._meta.db_table} le WHERE le.code = %s)"
        params.append(window.entity)
    if window.currency:
        entity_sql += " AND s.currency = %s"
        params.append(window.currency)
    row = fetch_one(
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
    return {"currency": settings.REPORTING_CURRENCY, "amount": cents(row["amount"]), "subscriptions": row["n"]}


def close_readiness(window: Window) -> dict:
    """Month-end close for the month holding the window's end: invoices finalized in it but
    not posted, and open reconciliation breaks. Ready when both are zero."""
    tz = timezone.get_current_timezone()
    local_end = (window.end - timedelta(microseconds=1)).astimezone(tz)
    month_start = local_end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    extra, params = window.flow_filter_sql()
    inv = fetch_one(
        f"""
        SELECT count(*) AS n, coalesce(sum({reporting_amount_sql()}), 0) AS amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status IN {ACTIVE} AND f.business_completed_at IS NULL
          AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        """,
        [settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, month_start, next_month, *params],
    )
    breaks = fetch_one(
        f"SELECT count(*) AS n, coalesce(sum(e.revenue_at_risk), 0) AS amount FROM {EXC_TABLE} e WHERE e.status IN {OPEN_EXC} AND e.error_class = 'reconciliation'",
        [],
    )
    return {
        "period_start": month_start,
        "period_end": next_month,
        "label": month_start.strftime("%B %Y"),
        "unposted": inv["n"],
        "unposted_amount": cents(inv["amount"]),
        "open_breaks": breaks["n"],
        "breaks_amount": cents(breaks["amount"]),
        "currency": settings.REPORTING_CURRENCY,
        "ready": inv["n"] == 0 and breaks["n"] == 0,
    }
