"""List selectors for the screens: filtered, indexed, bounded querysets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from sync.models import (
    AuditEntry, ConnectorCall, ConnectorState, ErrorClass, FlowRun, FlowStep, LegalEntity, SyncException, System,
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


@dataclass
class ExceptionFilters:
    status: str = "active"
    error_class: str = ""
    system: str = ""
    flow_type: str = ""
    assignee: str = ""
    cause: str = ""
    q: str = ""
    sort: str = "-last_seen"

    SORTS = {"-last_seen", "first_seen", "-first_seen", "-revenue_at_risk", "-occurrences", "-amount"}

    @classmethod
    def from_request(cls, params) -> "ExceptionFilters":
        data = {f.name: params.get(f.name, getattr(cls, f.name)).strip() for f in fields(cls)}
        if data["sort"] not in cls.SORTS:
            data["sort"] = cls.sort
        return cls(**data)

    def as_query(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


def exception_list(*, filters: ExceptionFilters) -> QuerySet[SyncException]:
    qs = SyncException.objects.select_related("assignee")
    if filters.status == "active":
        qs = qs.filter(status__in=SyncException.OPEN_STATUSES)
    elif filters.status and filters.status != "all":
        qs = qs.filter(status=filters.status)
    for name in ("error_class", "system", "flow_type"):
        value = getattr(filters, name)
        if value:
            qs = qs.filter(**{name: value})
    if filters.cause:
        qs = qs.filter(cause_key=filters.cause)
    if filters.assignee == "me":
        pass  # resolved by the view with the request user
    elif filters.assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif filters.assignee:
        qs = qs.filter(assignee__username=filters.assignee)
    if filters.q:
        qs = qs.filter(Q(document_number__istartswith=filters.q) | Q(message__icontains=filters.q) | Q(account_name__icontains=filters.q))
    return qs.order_by(filters.sort, "-id")


def exception_counts() -> dict:
    """Open counts for the queue's header (one grouped query)."""
    rows = SyncException.objects.filter(status__in=SyncException.OPEN_STATUSES).values("status").annotate(n=Count("id"))
    counts = {r["status"]: r["n"] for r in rows}
    return {"open": counts.get("open", 0), "retrying": counts.get("retrying", 0), "total": sum(counts.values())}


SUGGESTIONS = {
    "auth": "Check the connector's credentials and token on the Connectors page, then retry.",
    "validation": "Fix the field the target system named (usually in the CRM record), then retry.",
    "mapping": "A value has no mapping (product, price, entity). Add the mapping or fix the source record, then retry.",
    "not_found": "A referenced record is missing in the target system. Create or sync it first, then retry.",
    "conflict": "The target record changed or is locked. Inspect both sides, then retry or resolve.",
    "duplicate": "Two records look like the same party. Merge or mark one as canonical, then retry.",
    "rate_limit": "The target system throttled us; retries back off automatically. Retry later if it stays open.",
    "timeout": "The target did not answer in time. Retrying is safe: the step carries its idempotency key.",
    "unavailable": "The target system is down or the connector is paused. Retry once it is healthy.",
    "reconciliation": "Systems disagree. Compare the values below, correct the wrong system, then resolve.",
    "parked": "The flow waited too long for a prerequisite (e.g. the order). Check that the prerequisite arrived.",
    "missing": "An expected event never arrived. Check the source system for the document.",
}


def exception_story(exc: SyncException) -> dict:
    steps = list(exc.flow_run.steps.order_by("seq")) if exc.flow_run_id else []
    audit = AuditEntry.objects.filter(object_type="exception", object_id=str(exc.pk)).select_related("actor").order_by("at")[:200]
    return {"steps": steps, "audit": audit, "suggestion": SUGGESTIONS.get(exc.error_class, ""), "comments": exc.comments.select_related("author")}


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
