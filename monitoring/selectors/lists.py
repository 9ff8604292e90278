"""List selectors for the screens: filtered, indexed, bounded querysets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from sync.models import (
    AuditEntry, ConnectorCall, ConnectorState, ErrorClass, FlowRun, FlowStep, LegalEntity, System,
)

ERROR_CLASS_CHOICES = ErrorClass.choices
SYSTEM_CHOICES = [(s.value, s.label) for s in (System.SALESFORCE, System.NETSUITE, System.STRIPE, System.HUB)]


def legal_entities() -> list[tuple[str, str]]:
    return list(LegalEntity.objects.values_list("code", "name"))


@dataclass
class FlowFilters:
    status: str = ""
    entity: str = ""
    q: str = ""
    sort: str = "-business_started_at"

    SORTS = {"-business_started_at", "business_started_at", "-amount_reporting", "business_completed_at"}

    @classmethod
    def from_request(cls, params) -> "FlowFilters":
        data = {f.name: params.get(f.name, "").strip() for f in fields(cls)}
        if data["sort"] not in cls.SORTS:
            data["sort"] = cls.sort
        return cls(**data)


def flow_runs(*, flow_types: list[str], filters: FlowFilters) -> QuerySet[FlowRun]:
    qs = FlowRun.objects.filter(flow_type__in=flow_types)
    if filters.status == "in_flight":
        qs = qs.filter(status__in=FlowRun.ACTIVE_STATUSES)
    elif filters.status:
        qs = qs.filter(status=filters.status)
    if filters.entity:
        qs = qs.filter(legal_entity=filters.entity)
    if filters.q:
        qs = qs.filter(Q(document_number__istartswith=filters.q) | Q(account_name__icontains=filters.q))
    return qs.order_by(filters.sort, "-id")


def sla_breaches(*, limit: int = 50) -> QuerySet[FlowRun]:
    now = timezone.now()
    return (
        FlowRun.objects.filter(finished_at__isnull=True, sla_due_at__lt=now)
        .exclude(status=FlowRun.Status.CANCELLED)
        .order_by("sla_due_at")[:limit]
    )


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
    }


def connector_health() -> list[dict]:
    """Per system: circuit state plus the last hour's request rate, error rate and p95 latency."""
    since = timezone.now() - timezone.timedelta(hours=1)
    states = {s.system: s for s in ConnectorState.objects.all()}
    stats = {
        r["system"]: r
        for r in ConnectorCall.objects.filter(at__gte=since)
        .values("system")
        .annotate(calls=Count("id"), errors=Count("id", filter=~Q(error_class="")), last_call=Max("at"))
    }
    out = []
    for value, label in SYSTEM_CHOICES:
        if value == System.HUB:
            continue
        stat = stats.get(value, {})
        calls = stat.get("calls", 0)
        out.append(
            {
                "system": value,
                "label": label,
                "state": states.get(value),
                "calls_last_hour": calls,
                "error_rate": (stat.get("errors", 0) / calls) if calls else None,
                "p95_ms": _latency_p95(value, since) if calls else None,
                "waiting_steps": FlowStep.objects.filter(system=value, status=FlowStep.Status.RETRY).count(),
            }
        )
    return out


def _latency_p95(system: str, since) -> float | None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM {ConnectorCall._meta.db_table} WHERE system = %s AND at >= %s",
            [system, since],
        )
        value = cursor.fetchone()[0]
    return None if value is None else round(value)
