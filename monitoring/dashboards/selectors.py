"""The dashboards' reads beyond the KPIs: legal entities, traces and a deal's lifecycle,
connector health. (The flow list under each dashboard is filters.FlowRunFilterSet.)"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from monitoring.live import selectors as live
from sync.models import (
    AuditEntry,
    ConnectorCall,
    FlowRun,
    FlowStep,
    FlowType,
    Invoice,
    LegalEntity,
    Order,
    Payment,
    Subscription,
    SyncException,
    System,
)

SYSTEM_CHOICES = [(s.value, s.label) for s in (System.SALESFORCE, System.NETSUITE, System.STRIPE, System.HUB)]


def legal_entities() -> list[tuple[str, str]]:
    return list(LegalEntity.objects.values_list("code", "name"))


def trace_search(q: str) -> QuerySet[FlowRun]:
    """By correlation id (exact), else document number prefix or account name."""
    try:
        cid = uuid.UUID(q)
    except ValueError:
        return FlowRun.objects.filter(Q(document_number__istartswith=q) | Q(account_name__icontains=q)).order_by("-created_at")
    return FlowRun.objects.filter(correlation_id=cid).order_by("created_at")


def trace(run: FlowRun) -> dict:
    related = FlowRun.objects.filter(correlation_id=run.correlation_id).exclude(pk=run.pk).order_by("created_at")[:50]
    audit = AuditEntry.objects.filter(correlation_id=run.correlation_id).select_related("actor").order_by("at")[:500]
    return {
        "steps": run.steps.order_by("seq"),
        "related": related,
        "audit": audit,
        "exceptions": run.exceptions.order_by("-last_seen")[:20],
        "lifecycle": deal_lifecycle(run),
    }


# --- a deal's lifecycle as one line ----------------------------------------------------------------
LIFECYCLE_STAGES = [
    ("closed_won", "Closed won", "CRM"),
    ("erp_order", "ERP sales order", "ERP"),
    ("subscription", "Subscription", "Billing"),
    ("first_invoice", "First invoice", "Billing → ERP"),
    ("payment", "Payment", "Billing → ERP"),
]


def _order_number_for(run: FlowRun) -> str | None:
    if run.flow_type == FlowType.ORDER_ACTIVATION:
        return run.document_number
    if run.flow_type in (FlowType.INVOICE_POSTING, FlowType.PAYMENT_STATUS):
        invoice = Invoice.objects.filter(number=run.document_number).select_related("subscription__order").first()
        if invoice and invoice.subscription_id and invoice.subscription.order_id:
            return invoice.subscription.order.number
    return None


def deal_lifecycle(run: FlowRun) -> dict | None:
    """closed-won → ERP order → subscription → first invoice → payment: when each happened,
    the time spent reaching it, and where the deal is now (a handful of indexed lookups)."""
    number = _order_number_for(run)
    if not number:
        return None
    order = Order.objects.filter(number=number).first()
    order_run = FlowRun.objects.filter(flow_type=FlowType.ORDER_ACTIVATION, document_number=number).order_by("-created_at").first()
    if order is None and order_run is None:
        return None
    steps = {s.name: s for s in order_run.steps.all()} if order_run else {}
    now = timezone.now()

    def step_done(name: str):
        s = steps.get(name)
        return s.finished_at if s and s.status == FlowStep.Status.SUCCEEDED else None

    def step_failed(name: str) -> bool:
        s = steps.get(name)
        return bool(s and s.status in (FlowStep.Status.FAILED, FlowStep.Status.RETRY))

    subscription = Subscription.objects.filter(order__number=number).order_by("created_at").first() if order else None
    invoice = Invoice.objects.filter(subscription=subscription).order_by(Coalesce("finalized_at", "created_at")).first() if subscription else None
    payment = Payment.objects.filter(invoice=invoice).order_by(F("occurred_at").asc()).first() if invoice else None
    invoice_run = (
        FlowRun.objects.filter(flow_type=FlowType.INVOICE_POSTING, document_number=invoice.number).order_by("-created_at").first() if invoice else None
    )
    payment_run = FlowRun.objects.filter(flow_type=FlowType.PAYMENT_STATUS, document_number=invoice.number).order_by("-created_at").first() if invoice else None

    closed_won_at = (order.closed_won_at if order else None) or (order_run.closed_won_at or order_run.business_started_at if order_run else None)
    points = {
        "closed_won": (closed_won_at, order_run, False, order.number if order else number),
        "erp_order": (step_done("erp_sales_order"), order_run, step_failed("erp_sales_order"), ""),
        "subscription": (
            step_done("billing_subscription") or (subscription.created_at if subscription else None),
            order_run,
            step_failed("billing_subscription"),
            "",
        ),
        "first_invoice": (
            invoice.finalized_at if invoice else None,
            invoice_run,
            bool(invoice_run and invoice_run.status == FlowRun.Status.FAILED),
            f"{invoice.number}{' · posted' if invoice.posted_at else ' · not posted'}" if invoice else "",
        ),
        "payment": (
            (payment.occurred_at if payment and payment.status == Payment.Status.RECEIVED else None),
            payment_run,
            bool(payment and payment.status == Payment.Status.FAILED),
            (payment.failure_reason or "failed") if payment and payment.status == Payment.Status.FAILED else "",
        ),
    }
    stages, previous, current = [], None, None
    for key, label, system in LIFECYCLE_STAGES:
        at, flow, failed, note = points[key]
        stage = {
            "key": key,
            "label": label,
            "system": system,
            "at": at,
            "note": note,
            "run_id": flow.pk if flow else None,
            "state": "pending",
            "spent_seconds": None,
        }
        if at is not None and current is None:
            stage["state"] = "done"
            if previous is not None:
                stage["spent_seconds"] = max((at - previous).total_seconds(), 0)
            previous = at
        elif current is None:
            current = key
            stage["state"] = "failed" if failed else "now"
            if previous is not None:
                stage["spent_seconds"] = max((now - previous).total_seconds(), 0)
        stages.append(stage)
    total_end = previous if current is None else now
    return {
        "order_number": number,
        "stages": stages,
        "current": current,
        "total_seconds": (total_end - closed_won_at).total_seconds() if closed_won_at else None,
        "complete": current is None,
    }


# --- connectors ---------------------------------------------------------------------------------
def connector_health(hours: int = 1) -> list[dict]:
    """Per system: its live state (monitoring.live: circuit, verdict, last successful call, steps
    waiting to retry) plus the range's request rate, error rate (by class) and p95 latency."""
    since = timezone.now() - timedelta(hours=hours)
    table = ConnectorCall._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT system, count(*), count(*) FILTER (WHERE error_class <> ''),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
            FROM {table} WHERE at >= %s GROUP BY system
            """,
            [since],
        )
        stats = {r[0]: {"calls": r[1], "errors": r[2], "p95": r[3]} for r in cursor.fetchall()}
        cursor.execute(
            f"SELECT system, error_class, count(*) FROM {table} WHERE at >= %s AND error_class <> '' GROUP BY 1, 2 ORDER BY 3 DESC",
            [since],
        )
        by_class: dict[str, list] = {}
        for system, error_class, n in cursor.fetchall():
            by_class.setdefault(system, []).append({"error_class": error_class, "n": n})
    verdicts = {c["system"]: c for c in live.connector_status()}
    known = [s for s, _ in SYSTEM_CHOICES if s != System.HUB]
    systems = known + sorted((set(stats) | set(verdicts)) - set(known) - {System.HUB})
    labels = dict(System.choices)
    open_exceptions = dict(
        SyncException.objects.filter(status__in=SyncException.OPEN_STATUSES, system__in=systems)
        .order_by()
        .values("system")
        .annotate(n=Count("id"))
        .values_list("system", "n")
    )
    out = []
    for value in systems:
        stat = stats.get(value, {})
        calls = stat.get("calls", 0)
        verdict = verdicts.get(value, {})
        out.append(
            {
                "system": value,
                "label": labels.get(value, value),
                "state": verdict.get("state"),
                "calls": calls,
                "calls_per_min": round(calls / (hours * 60), 2),
                "errors": stat.get("errors", 0),
                "error_rate": (stat.get("errors", 0) / calls) if calls else None,
                "errors_by_class": by_class.get(value, []),
                "p95_ms": None if stat.get("p95") is None else round(stat["p95"]),
                "last_success_at": verdict.get("last_success_at"),  # the last call that succeeded
                "waiting_steps": verdict.get("waiting_steps", 0),
                "next_attempt_at": verdict.get("next_attempt_at"),
                "status": verdict.get("status", "ok"),
                "reason": verdict.get("reason", ""),
                "since": verdict.get("since"),
                "open_exceptions": open_exceptions.get(value, 0),
            }
        )
    return out


def connector_series(hours: int = 1) -> list[dict]:
    """Calls, errors and p95 latency per system per interval (5 min for ≤ 6 h, else hourly)."""
    since = timezone.now() - timedelta(hours=hours)
    step = 300 if hours <= 6 else 3600
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT system, to_timestamp(floor(extract(epoch FROM at) / %s) * %s) AS bucket, count(*),
                   count(*) FILTER (WHERE error_class <> ''), percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
            FROM {ConnectorCall._meta.db_table} WHERE at >= %s GROUP BY 1, 2 ORDER BY 2, 1
            """,
            [step, step, since],
        )
        tz = timezone.get_current_timezone()
        return [{"system": r[0], "bucket": r[1].astimezone(tz), "calls": r[2], "errors": r[3], "p95_ms": r[4]} for r in cursor.fetchall()]
