"""Exception queue selectors: filters (all indexed), counts, the story behind one exception."""

from __future__ import annotations

from dataclasses import dataclass, fields

from django.db.models import Count, Q, QuerySet

from sync.models import AuditEntry, ErrorClass, SyncException, System

ERROR_CLASS_CHOICES = ErrorClass.choices
SYSTEM_CHOICES = [(s.value, s.label) for s in (System.SALESFORCE, System.NETSUITE, System.STRIPE, System.HUB)]


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
