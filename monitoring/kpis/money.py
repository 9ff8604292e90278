"""Money figures in the reporting currency, exactly as docs/MONEY.md defines them: revenue at risk
(and records out of date), dollars stuck in flight, ARR and unbilled ARR, payment state, and
month-end close readiness.

Every figure is "now" (the window's `as_of`) and converts at the reporting rate of that day: the
latest CurrencyRate on or before it. A currency without a rate is left out of the totals, never
counted 1:1, and `unconverted()` lists it so every screen says what is missing. Each is one
set-based query over indexed rows: unsettled flow runs, open exceptions, active subscriptions.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from monitoring.models import SlaHoliday
from sync.canonical.charges import first_year_value
from sync.engine.money import flow_risk
from sync.flows.registry import writeback_steps
from sync.models import Customer, FlowRun, FlowType, Invoice, InvoiceLine, LegalEntity, Order, Subscription, SyncException

from .sql import ACTIVE, EXC_TABLE, FLOW_TABLE, OPEN_EXC, RATE_TABLE, cents, fetch_all, fetch_one, sql_list
from .window import Window

CLOSE_WINDOW_BUSINESS_DAYS = 5
INVOICE_TABLE = Invoice._meta.db_table
LINE_TABLE = InvoiceLine._meta.db_table
SUB_TABLE = Subscription._meta.db_table
CUSTOMER_TABLE = Customer._meta.db_table
ENTITY_TABLE = LegalEntity._meta.db_table


def rates_cte() -> str:
    """`rates(currency, rate)`: the reporting rate of the as-of day per currency (params: the day)."""
    return f"""rates AS (SELECT DISTINCT ON (r.currency) r.currency, r.rate_to_reporting AS rate FROM {RATE_TABLE} r
                        WHERE r.valid_from <= %s::date ORDER BY r.currency, r.valid_from DESC)"""


def factor(currency: str) -> str:
    """Reporting units per unit of `currency` (a column), joined to `rates` as rt (params: the reporting
    currency); NULL when the currency has no rate on the day, so sums leave the amount out."""
    return f"(CASE WHEN {currency} IN ('', %s) THEN 1 ELSE rt.rate END)"  # NULL without a rate: left out, listed by unconverted()


def _writeback() -> str:
    return sql_list(writeback_steps())


def _flow_risk_sql() -> str:
    """A flow's revenue at risk in its own currency (docs/MONEY.md)."""
    return f"""CASE
        WHEN f.flow_type = '{FlowType.AMENDMENT}' THEN abs(f.amount)
        WHEN f.flow_type = '{FlowType.PAYMENT_STATUS}' AND f.context -> 'event' ->> 'type' = 'payment.failed.v1' THEN 0
        WHEN f.flow_type = '{FlowType.INVOICE_POSTING}' THEN coalesce(i.amount_remaining, f.amount)
        ELSE abs(f.amount) END"""


def revenue_at_risk(window: Window) -> dict:
    """Now, in reporting currency: every flow with an open exception (other than a failed CRM
    write-back), or unfinished past its SLA, counted once at its own measure (an order's first-year
    value, an amendment's |ARR change|, an invoice's amount remaining, a payment's amount); plus open
    exceptions that belong to no flow (missing events, reconciliation breaks), each document once and
    only when no counted flow carries that document. Flows whose only problem is a CRM write-back
    carry no revenue at risk: they are `records_out_of_date`."""
    extra, params = window.flow_filter_sql()
    wb = _writeback()
    orphan_filter = "" if not (window.entity or window.currency) else " AND false"
    row = fetch_one(
        f"""
        WITH {rates_cte()},
        flows AS (
            SELECT f.id, f.document_number, {_flow_risk_sql()} * {factor("f.currency")} AS amount
            FROM {FLOW_TABLE} f
            LEFT JOIN {INVOICE_TABLE} i ON f.flow_type = '{FlowType.INVOICE_POSTING}' AND i.number = f.document_number
            LEFT JOIN rates rt ON rt.currency = f.currency
            WHERE f.id IN (
                SELECT e.flow_run_id FROM {EXC_TABLE} e
                 WHERE e.status IN {OPEN_EXC} AND e.flow_run_id IS NOT NULL AND e.step_name NOT IN {wb}
                UNION
                SELECT g.id FROM {FLOW_TABLE} g WHERE g.finished_at IS NULL AND g.status <> 'cancelled'
                   AND (g.sla_due_at < %s OR g.sla_breached) AND g.current_step NOT IN {wb}
            ) {extra}
        ),
        orphans AS (
            SELECT DISTINCT ON (coalesce(nullif(e.document_number, ''), e.id::text)) e.revenue_at_risk AS amount
            FROM {EXC_TABLE} e
            WHERE e.flow_run_id IS NULL AND e.status IN {OPEN_EXC} AND e.step_name NOT IN {wb} {orphan_filter}
              AND NOT EXISTS (SELECT 1 FROM flows WHERE flows.document_number <> '' AND flows.document_number = e.document_number)
            ORDER BY coalesce(nullif(e.document_number, ''), e.id::text), e.revenue_at_risk DESC
        ),
        stale AS (
            SELECT DISTINCT coalesce(e.flow_run_id::text, 'e' || e.id::text) AS record
            FROM {EXC_TABLE} e LEFT JOIN {FLOW_TABLE} f ON f.id = e.flow_run_id
            WHERE e.status IN {OPEN_EXC} AND e.step_name IN {wb}
              AND NOT EXISTS (SELECT 1 FROM flows WHERE flows.id = e.flow_run_id) {extra}
        )
        SELECT (SELECT coalesce(sum(amount), 0) FROM flows) AS flow_amount, (SELECT count(*) FROM flows) AS flows,
               (SELECT coalesce(sum(amount), 0) FROM orphans) AS orphan_amount, (SELECT count(*) FROM orphans) AS orphans,
               (SELECT count(*) FROM stale) AS stale
        """,
        [window.as_of.date(), settings.REPORTING_CURRENCY, window.as_of, *params, *params],
    )
    total = Decimal(row["flow_amount"]) + Decimal(row["orphan_amount"])
    return {
        "currency": settings.REPORTING_CURRENCY,
        "amount": cents(total),
        "flows": row["flows"],
        "documents_without_flow": row["orphans"],
        "records_out_of_date": row["stale"],
    }


def dollars_in_flight(window: Window) -> dict:
    """Now: the first-year contract value of order activations not completed, plus the amount of
    invoices finalized and not posted (reporting currency)."""
    extra, params = window.flow_filter_sql()
    rows = fetch_all(
        f"""
        WITH {rates_cte()}
        SELECT f.flow_type, count(*) AS n, coalesce(sum(f.amount * {factor("f.currency")}), 0) AS amount
        FROM {FLOW_TABLE} f LEFT JOIN rates rt ON rt.currency = f.currency
        WHERE f.flow_type IN (%s, %s) AND f.status IN {ACTIVE} {extra}
        GROUP BY 1
        """,
        [window.as_of.date(), settings.REPORTING_CURRENCY, FlowType.ORDER_ACTIVATION, FlowType.INVOICE_POSTING, *params],
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


def _subscription_scope(window: Window) -> tuple[str, list]:
    sql, params = "", []
    if window.entity:
        sql += f" AND c.legal_entity_id IN (SELECT le.id FROM {ENTITY_TABLE} le WHERE le.code = %s)"
        params.append(window.entity)
    if window.currency:
        sql += " AND s.currency = %s"
        params.append(window.currency)
    return sql, params


def unconverted(window: Window) -> list[dict]:
    """Now: every currency with money in scope that has no reporting rate on the as-of day — its
    amounts are left out of the converted totals (never counted 1:1) and the screens say so.
    Documents counted: active subscriptions, finalized invoices not fully settled, unsettled flows
    and flows of the window, open exceptions. [{"currency", "documents"}], by currency."""
    extra, params = window.flow_filter_sql()
    rows = fetch_all(
        f"""
        WITH {rates_cte()},
        docs AS (
            SELECT s.currency FROM {SUB_TABLE} s WHERE s.status = 'active'
            UNION ALL SELECT i.currency FROM {INVOICE_TABLE} i
                WHERE i.finalized_at IS NOT NULL AND i.status IN ('open', 'partially_paid', 'overpaid')
            UNION ALL SELECT f.currency FROM {FLOW_TABLE} f
                WHERE (f.status IN {ACTIVE} OR (f.business_started_at >= %s AND f.business_started_at < %s)) {extra}
            UNION ALL SELECT e.currency FROM {EXC_TABLE} e WHERE e.status IN {OPEN_EXC}
        )
        SELECT d.currency, count(*) AS documents FROM docs d LEFT JOIN rates rt ON rt.currency = d.currency
        WHERE d.currency NOT IN ('', %s) AND rt.rate IS NULL
        GROUP BY 1 ORDER BY 1
        """,
        [window.as_of.date(), window.start, window.end, *params, settings.REPORTING_CURRENCY],
    )
    return [{"currency": r["currency"], "documents": r["documents"]} for r in rows]


def arr(window: Window) -> dict:
    """ARR of active subscriptions now (recurring items normalised to a year; one-time and usage
    charges are never ARR), and apart from it what one-time and usage lines billed on invoices
    finalized in the window."""
    scope, params = _subscription_scope(window)
    row = fetch_one(
        f"""
        WITH {rates_cte()}
        SELECT count(*) AS n, coalesce(sum(s.arr * {factor("s.currency")}), 0) AS amount
        FROM {SUB_TABLE} s JOIN {CUSTOMER_TABLE} c ON c.id = s.customer_id LEFT JOIN rates rt ON rt.currency = s.currency
        WHERE s.status = 'active' {scope}
        """,
        [window.as_of.date(), settings.REPORTING_CURRENCY, *params],
    )
    billed_scope, billed_params = "", []
    if window.entity:
        billed_scope += f" AND i.legal_entity_id IN (SELECT le.id FROM {ENTITY_TABLE} le WHERE le.code = %s)"
        billed_params.append(window.entity)
    if window.currency:
        billed_scope += " AND i.currency = %s"
        billed_params.append(window.currency)
    billed = {
        r["charge_type"]: r["amount"]
        for r in fetch_all(
            f"""
            WITH {rates_cte()}
            SELECT l.charge_type, coalesce(sum(l.amount * {factor("i.currency")}), 0) AS amount
            FROM {INVOICE_TABLE} i JOIN {LINE_TABLE} l ON l.invoice_id = i.id LEFT JOIN rates rt ON rt.currency = i.currency
            WHERE i.finalized_at >= %s AND i.finalized_at < %s AND l.charge_type IN ('one_time', 'usage') {billed_scope}
            GROUP BY 1
            """,
            [window.as_of.date(), settings.REPORTING_CURRENCY, window.start, window.end, *billed_params],
        )
    }
    return {
        "currency": settings.REPORTING_CURRENCY,
        "amount": cents(row["amount"]),
        "subscriptions": row["n"],
        "one_time_billed": cents(billed.get("one_time", 0)),
        "usage_billed": cents(billed.get("usage", 0)),
    }


def unbilled_arr(window: Window) -> dict:
    """ARR of active subscriptions past their first invoice date (+1 day grace) with no finalized
    invoice linked to them, now, in reporting currency."""
    scope, params = _subscription_scope(window)
    row = fetch_one(
        f"""
        WITH {rates_cte()}
        SELECT count(*) AS n, coalesce(sum(s.arr * {factor("s.currency")}), 0) AS amount
        FROM {SUB_TABLE} s JOIN {CUSTOMER_TABLE} c ON c.id = s.customer_id LEFT JOIN rates rt ON rt.currency = s.currency
        WHERE s.status = 'active' AND s.billing_starts_at + interval '1 day' < %s
          AND NOT EXISTS (SELECT 1 FROM {INVOICE_TABLE} i WHERE i.subscription_id = s.id AND i.finalized_at IS NOT NULL) {scope}
        """,
        [window.as_of.date(), settings.REPORTING_CURRENCY, window.as_of, *params],
    )
    return {"currency": settings.REPORTING_CURRENCY, "amount": cents(row["amount"]), "subscriptions": row["n"]}


def payment_states(window: Window) -> dict:
    """Invoices by payment state now: how many, what remains to collect (open and partially paid)
    and the credit balance of overpaid ones, in reporting currency. Finalized invoices only."""
    scope, params = "", []
    if window.entity:
        scope += f" AND i.legal_entity_id IN (SELECT le.id FROM {ENTITY_TABLE} le WHERE le.code = %s)"
        params.append(window.entity)
    if window.currency:
        scope += " AND i.currency = %s"
        params.append(window.currency)
    rows = fetch_all(
        f"""
        WITH {rates_cte()}
        SELECT i.status, count(*) AS n,
               coalesce(sum(i.amount_remaining * {factor("i.currency")}), 0) AS remaining,
               coalesce(sum(greatest(i.amount_paid - (i.total - i.amount_credited), 0) * {factor("i.currency")}), 0) AS credit
        FROM {INVOICE_TABLE} i LEFT JOIN rates rt ON rt.currency = i.currency
        WHERE i.finalized_at IS NOT NULL AND i.status IN ('open', 'partially_paid', 'paid', 'overpaid') {scope}
        GROUP BY 1
        """,
        [window.as_of.date(), settings.REPORTING_CURRENCY, settings.REPORTING_CURRENCY, *params],
    )
    by = {r["status"]: r for r in rows}

    def state(name: str) -> dict:
        r = by.get(name, {})
        return {"invoices": r.get("n", 0), "remaining": cents(r.get("remaining", 0)), "credit_balance": cents(r.get("credit", 0))}

    out = {name: state(name) for name in ("open", "partially_paid", "paid", "overpaid")}
    return {
        "currency": settings.REPORTING_CURRENCY,
        **out,
        "receivable": cents(sum(Decimal(out[n]["remaining"]) for n in ("open", "partially_paid"))),
        "credit_balance": out["overpaid"]["credit_balance"],
    }


# --- month-end close -------------------------------------------------------------------------------
def business_days(start: date, end: date, holidays: set[date]) -> list[date]:
    days, day = [], start
    while day <= end:
        if day.weekday() < 5 and day not in holidays:
            days.append(day)
        day += timedelta(days=1)
    return days


def closing_month(today: date, holidays: set[date] | None = None) -> date:
    """The first day of the month being closed on `today`: the previous month during the close
    window (the first 5 business days of a month: Mon–Fri, not SLA holidays), else the current one."""
    first = today.replace(day=1)
    if holidays is None:
        holidays = set(SlaHoliday.objects.filter(date__gte=first, date__lte=first + timedelta(days=14)).values_list("date", flat=True))
    window = business_days(first, first.replace(day=calendar.monthrange(first.year, first.month)[1]), holidays)[:CLOSE_WINDOW_BUSINESS_DAYS]
    if window and today <= window[-1]:
        return (first - timedelta(days=1)).replace(day=1)
    return first


def close_readiness(window: Window) -> dict:
    """Month-end close for the closing month (in the viewer's zone): invoices finalized in it and
    not posted, payments received in it and not applied, open reconciliation breaks dated in it
    (first seen in it). Ready only when all three are zero."""
    tz = timezone.get_current_timezone()
    today = window.as_of.astimezone(tz).date()
    month = closing_month(today)
    month_start = datetime.combine(month, time.min, tzinfo=tz)
    month_end = datetime.combine((month + timedelta(days=32)).replace(day=1), time.min, tzinfo=tz)
    extra, params = window.flow_filter_sql()
    flows = {
        r["kind"]: r
        for r in fetch_all(
            f"""
            WITH {rates_cte()}
            SELECT CASE WHEN f.flow_type = '{FlowType.INVOICE_POSTING}' THEN 'invoices' ELSE 'payments' END AS kind, count(*) AS n,
                   coalesce(sum(f.amount * {factor("f.currency")}), 0) AS amount
            FROM {FLOW_TABLE} f LEFT JOIN rates rt ON rt.currency = f.currency
            WHERE (f.flow_type = '{FlowType.INVOICE_POSTING}' OR (f.flow_type = '{FlowType.PAYMENT_STATUS}' AND f.context -> 'event' ->> 'type' = 'payment.received.v1'))
              AND f.status IN {ACTIVE} AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
            GROUP BY 1
            """,
            [window.as_of.date(), settings.REPORTING_CURRENCY, month_start, month_end, *params],
        )
    }
    breaks = fetch_one(
        f"""SELECT count(*) AS n, coalesce(sum(e.revenue_at_risk), 0) AS amount FROM {EXC_TABLE} e
            WHERE e.status IN {OPEN_EXC} AND e.error_class = 'reconciliation' AND e.first_seen >= %s AND e.first_seen < %s""",
        [month_start, month_end],
    )
    invoices, payments = flows.get("invoices", {}), flows.get("payments", {})
    unposted, unapplied = invoices.get("n", 0), payments.get("n", 0)
    return {
        "period_start": month_start,
        "period_end": month_end,
        "label": month_start.strftime("%B %Y"),
        "in_close_window": month != today.replace(day=1),
        "unposted": unposted,
        "unposted_amount": cents(invoices.get("amount", 0)),
        "unapplied_payments": unapplied,
        "unapplied_amount": cents(payments.get("amount", 0)),
        "open_breaks": breaks["n"],
        "breaks_amount": cents(breaks["amount"]),
        "currency": settings.REPORTING_CURRENCY,
        "ready": unposted == 0 and unapplied == 0 and breaks["n"] == 0,
    }


# --- one deal ----------------------------------------------------------------------------------------
def deal_invoices(deal_id: str):
    """The invoices of a deal: those billing its subscription (the link back to its order), and
    those whose posting flow carries the deal id (an invoice the billing metadata named the order on)."""
    posted_for_deal = FlowRun.objects.filter(deal_id=deal_id, flow_type=FlowType.INVOICE_POSTING).values("document_number")
    return Invoice.objects.filter(Q(subscription__order__number=deal_id) | Q(number__in=posted_for_deal)).distinct()


def deal_money(deal_id: str) -> dict:
    """A deal's money in its own currency, by docs/MONEY.md: contract value = the order's first-year
    contract value (sync.canonical.charges.first_year_value: recurring ARR + one-time fees); ARR = its
    subscription's ARR while active (0 once cancelled; amendments change it when they complete);
    invoiced = totals of its finalized invoices; credited, paid, remaining and credit balance = each
    invoice's payment state (sync.canonical.store.refresh_payment_state) summed; at risk = the revenue
    at risk of its flows with an open exception (sync.engine.money.flow_risk, reporting currency)."""
    order_run = FlowRun.objects.filter(deal_id=deal_id, flow_type=FlowType.ORDER_ACTIVATION).order_by("-created_at").first()
    order = Order.objects.filter(number=deal_id).first()
    lines = ((order_run.context.get("event") or {}).get("data") or {}).get("lines") if order_run else None
    contract_value = first_year_value(lines) if lines else (order_run.amount if order_run else None)
    subscription = Subscription.objects.filter(order__number=deal_id).order_by("created_at").first()
    invoices = list(deal_invoices(deal_id).filter(finalized_at__isnull=False))
    currency = (order.currency if order else "") or (order_run.currency if order_run else "") or (invoices[0].currency if invoices else "")

    def total(values) -> Decimal:
        return cents(sum((Decimal(v) for v in values), Decimal(0)))

    at_risk = Decimal(0)
    failing = SyncException.objects.filter(flow_run__deal_id=deal_id, status__in=SyncException.OPEN_STATUSES).exclude(step_name__in=writeback_steps())
    late = (
        FlowRun.objects.filter(deal_id=deal_id, finished_at__isnull=True)
        .filter(Q(sla_due_at__lt=timezone.now()) | Q(sla_breached=True))
        .exclude(status=FlowRun.Status.CANCELLED)
        .exclude(current_step__in=writeback_steps())
    )
    # each flow once, at its own measure: an open exception other than a write-back, or past its SLA
    failing_ids = set(failing.values_list("flow_run_id", flat=True))
    late_ids = set(late.values_list("pk", flat=True))
    for run in FlowRun.objects.filter(pk__in=failing_ids | late_ids):
        at_risk += flow_risk(run)
    return {
        "currency": currency,
        "contract_value": cents(contract_value) if contract_value is not None else None,
        "arr": cents(subscription.arr) if subscription and subscription.status == Subscription.Status.ACTIVE else Decimal("0.00"),
        "subscription_status": subscription.get_status_display() if subscription else "",
        "invoices": len(invoices),
        "invoiced": total(i.total for i in invoices),
        "credited": total(i.amount_credited for i in invoices),
        "paid": total(i.amount_paid for i in invoices),
        "remaining": total(i.amount_remaining for i in invoices),
        "credit_balance": total(i.credit_balance for i in invoices),
        "at_risk": cents(at_risk),
        "at_risk_failing": len(failing_ids),  # flows counted for an open exception
        "at_risk_late": len(late_ids - failing_ids),  # … and for being past their SLA alone
        "reporting_currency": settings.REPORTING_CURRENCY,
    }
