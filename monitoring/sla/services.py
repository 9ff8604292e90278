"""SLA services: breach marking and policy edits.

The beat task `monitoring.sla_sweep` calls `sla_mark_breaches()`, which flips
`FlowRun.sla_breached` exactly once per flow (compare-and-set in one UPDATE) and hands the
newly breached flows to the alerts, and `sla_at_risk_counts()` for the at-risk alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from monitoring.kpis.sla import AT_RISK_FLOWS
from monitoring.models import SlaPolicy
from sync.audit import audit_record
from sync.models import FlowRun


@dataclass(frozen=True)
class BreachedFlow:
    id: int
    flow_type: str
    document_number: str
    amount_reporting: str
    sla_due_at: datetime


def sla_mark_breaches(*, now: datetime | None = None) -> list[BreachedFlow]:
    """Flip `sla_breached` on running flows past due (and late completions the engine missed).

    One UPDATE … RETURNING: a flow is returned (and so alerted) by exactly one sweep, even when
    two sweeps overlap.
    """
    now = now or timezone.now()
    table = FlowRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET sla_breached = true
            WHERE NOT sla_breached AND status <> 'cancelled' AND sla_due_at IS NOT NULL AND (
                  (finished_at IS NULL AND sla_due_at < %s)
               OR (business_completed_at IS NOT NULL AND business_completed_at > sla_due_at
                   AND business_completed_at >= %s))
            RETURNING id, flow_type, document_number, amount_reporting, sla_due_at
            """,
            [now, now - timedelta(days=2)],
        )
        rows = cursor.fetchall()
    return [BreachedFlow(r[0], r[1], r[2], str(r[3]), r[4]) for r in rows]


def sla_at_risk_counts(*, now: datetime | None = None) -> dict[str, int]:
    """Running flows past their policy's at-risk share of the allowed time, per flow type."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT f.flow_type, count(*)
            FROM {AT_RISK_FLOWS}
            GROUP BY f.flow_type
            """,
            [now, now],
        )
        return dict(cursor.fetchall())


def sla_policy_update(*, policy_id: int, user, data: dict) -> SlaPolicy:
    """Edit one policy (validated with the model's rules); the caller checks the permission."""
    if not user.has_perm("monitoring.manage_sla"):
        raise PermissionDenied("Your role may not edit SLA policies.")
    policy = SlaPolicy.objects.get(pk=policy_id)
    before = {key: str(getattr(policy, key)) for key in data}
    for key, value in data.items():
        setattr(policy, key, value)
    policy.updated_by = user
    policy.full_clean()
    policy.save()
    audit_record(object_type="sla_policy", object_id=policy.flow_type, action="update", before=before, after={k: str(v) for k, v in data.items()}, user=user)
    return policy
