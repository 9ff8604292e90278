"""The SLA page's lists: running flows past their due time, and those at risk of it."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from monitoring.kpis.sla import at_risk_ids
from sync.models import FlowRun


def sla_breaches(*, limit: int = 50, entity: str = "") -> QuerySet[FlowRun]:
    """Running flows past their due time, most overdue first."""
    qs = FlowRun.objects.filter(finished_at__isnull=True, sla_due_at__lt=timezone.now()).exclude(status=FlowRun.Status.CANCELLED)
    if entity:
        qs = qs.filter(legal_entity=entity)
    return qs.order_by("sla_due_at")[:limit]


def sla_at_risk(*, limit: int = 50, entity: str = "", now: datetime | None = None) -> QuerySet[FlowRun]:
    """Running flows past the at-risk share of their allowed time, soonest due first."""
    qs = FlowRun.objects.filter(id__in=at_risk_ids(now or timezone.now()))
    if entity:
        qs = qs.filter(legal_entity=entity)
    return qs.order_by("sla_due_at")[:limit]
