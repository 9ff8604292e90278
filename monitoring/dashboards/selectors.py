"""The dashboards' reads beyond the KPIs: legal entities, traces and a deal's lifecycle,
connector health. (The flow list under each dashboard is filters.FlowRunFilterSet.)"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from monitoring.live import selectors as live
from sync.models import AuditEntry, ConnectorCall, FlowRun, LegalEntity, SyncException, System

from . import deals

SYSTEM_CHOICES = [(s.value, s.label) for s in (System.SALESFORCE, System.NETSUITE, System.STRIPE, System.HUB)]


def legal_entities() -> list[tuple[str, str]]:
    return list(LegalEntity.objects.values_list("code", "name"))


def trace_search(q: str) -> QuerySet[FlowRun]:
    """By correlation id (exact), else deal id (exact: every flow of the deal), document number
    prefix or account name."""
    try:
        cid = uuid.UUID(q)
    except ValueError:
        return FlowRun.objects.filter(Q(deal_id=q) | Q(document_number__istartswith=q) | Q(account_name__icontains=q)).order_by("-created_at")
    return FlowRun.objects.filter(correlation_id=cid).order_by("created_at")


def trace(run: FlowRun) -> dict:
    related = FlowRun.objects.filter(correlation_id=run.correlation_id).exclude(pk=run.pk).order_by("created_at")[:50]
    audit = AuditEntry.objects.filter(correlation_id=run.correlation_id).select_related("actor").order_by("at")[:500]
    return {
        "deal_flows": FlowRun.objects.filter(deal_id=run.deal_id).count() if run.deal_id else 0,
        "steps": run.steps.order_by("seq"),
        "related": related,
        "audit": audit,
        "exceptions": run.exceptions.order_by("-last_seen")[:20],
        "lifecycle": deals.deal_lifecycle(run.deal_id),
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
