"""SLA policies in time: due dates (24×7 or business calendar, month-end close), breach marking.

The engine calls `sla_due_at(flow_type, started_at)` when a flow starts and stores the result
on `FlowRun.sla_due_at`; the beat task `monitoring.sla_sweep` calls `sla_mark_breaches()`,
which flips `FlowRun.sla_breached` exactly once per flow (compare-and-set in one UPDATE) and
hands the newly breached flows to the alerts.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django import forms
from django.db import connection
from django.utils import timezone

from sync.models import FlowRun

from monitoring.models import SlaHoliday, SlaPolicy

MAX_CALENDAR_DAYS = 3660  # a business-calendar target never walks further than ten years


def in_month_end_window(policy: SlaPolicy, when: datetime) -> bool:
    """True in the last `month_end_days_before` days of a month or the first `..._after` days."""
    local = when.astimezone(ZoneInfo(policy.time_zone)).date()
    last_day = _calendar.monthrange(local.year, local.month)[1]
    return local.day > last_day - policy.month_end_days_before or local.day <= policy.month_end_days_after


def target_for(policy: SlaPolicy, started_at: datetime) -> int:
    """Seconds allowed for a flow that started at `started_at` (the stricter month-end target applies)."""
    if policy.month_end_target_seconds and in_month_end_window(policy, started_at):
        return min(policy.month_end_target_seconds, policy.target_seconds)
    return policy.target_seconds


def _add_business_seconds(policy: SlaPolicy, started_at: datetime, seconds: int, holidays: set[date]) -> datetime:
    """Walk working hours (Mon–Fri, policy hours, not holidays) until `seconds` are spent."""
    tz = ZoneInfo(policy.time_zone)
    local = started_at.astimezone(tz)
    day = local.date()
    remaining = float(seconds)
    for _ in range(MAX_CALENDAR_DAYS):
        if day.weekday() < 5 and day not in holidays:
            open_at = datetime.combine(day, policy.business_hours_start, tzinfo=tz)
            close_at = datetime.combine(day, policy.business_hours_end, tzinfo=tz)
            begin = max(open_at, local)
            if begin < close_at:
                available = (close_at - begin).total_seconds()
                if remaining <= available:
                    return (begin + timedelta(seconds=remaining)).astimezone(started_at.tzinfo)
                remaining -= available
        day += timedelta(days=1)
    raise ValueError("business calendar has no working time in ten years")


def due_for_policy(policy: SlaPolicy, started_at: datetime, holidays: set[date] | None = None) -> datetime:
    seconds = target_for(policy, started_at)
    if policy.calendar == SlaPolicy.Calendar.BUSINESS:
        if holidays is None:
            holidays = set(SlaHoliday.objects.filter(date__gte=started_at.date() - timedelta(days=1)).values_list("date", flat=True)[:1000])
        return _add_business_seconds(policy, started_at, seconds, holidays)
    return started_at + timedelta(seconds=seconds)


def sla_due_at(flow_type: str, started_at: datetime | None) -> datetime | None:
    """When a flow of this type that started at `started_at` must be finished; None without a policy."""
    if started_at is None:
        return None
    policy = SlaPolicy.objects.filter(flow_type=flow_type).first()
    if policy is None:
        return None
    return due_for_policy(policy, started_at)


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
            FROM {FlowRun._meta.db_table} f JOIN {SlaPolicy._meta.db_table} p ON p.flow_type = f.flow_type
            WHERE f.finished_at IS NULL AND f.status <> 'cancelled' AND f.sla_due_at > %s
              AND f.business_started_at + (f.sla_due_at - f.business_started_at) * (p.at_risk_pct / 100.0) <= %s
            GROUP BY f.flow_type
            """,
            [now, now],
        )
        return dict(cursor.fetchall())


def sla_policy_update(*, policy_id: int, user, data: dict) -> SlaPolicy:
    """Edit one policy (validated with the model's rules); the caller checks the permission."""
    from django.core.exceptions import PermissionDenied

    if not user.has_perm("monitoring.manage_sla"):
        raise PermissionDenied("Your role may not edit SLA policies.")
    from sync.audit import audit_record

    policy = SlaPolicy.objects.get(pk=policy_id)
    before = {key: str(getattr(policy, key)) for key in data}
    for key, value in data.items():
        setattr(policy, key, value)
    policy.updated_by = user
    policy.full_clean()
    policy.save()
    audit_record(object_type="sla_policy", object_id=policy.flow_type, action="update", before=before, after={k: str(v) for k, v in data.items()}, user=user)
    return policy


class SlaPolicyForm(forms.Form):
    """The SLA page's edit form: minutes in the form, seconds in the policy."""

    target_minutes = forms.DecimalField(min_value=Decimal("0.1"), max_digits=8, decimal_places=1, label="Target (minutes)")
    objective_pct = forms.DecimalField(min_value=0, max_value=100, max_digits=5, decimal_places=2, label="Objective (% met)")
    at_risk_pct = forms.IntegerField(min_value=1, max_value=100, label="At risk after (% of target)")
    calendar = forms.ChoiceField(choices=SlaPolicy.Calendar.choices)
    business_hours_start = forms.TimeField(label="Working day from")
    business_hours_end = forms.TimeField(label="to")
    time_zone = forms.CharField(max_length=64)
    month_end_minutes = forms.DecimalField(required=False, min_value=Decimal("0.1"), max_digits=8, decimal_places=1, label="Month-end target (minutes)")
    month_end_days_before = forms.IntegerField(min_value=0, max_value=15, label="Close window: last days of month")
    month_end_days_after = forms.IntegerField(min_value=0, max_value=15, label="first days of next month")

    def __init__(self, *args, instance: SlaPolicy, **kwargs):
        initial = {
            "target_minutes": Decimal(instance.target_seconds) / 60,
            "objective_pct": instance.objective_pct, "at_risk_pct": instance.at_risk_pct, "calendar": instance.calendar,
            "business_hours_start": instance.business_hours_start, "business_hours_end": instance.business_hours_end,
            "time_zone": instance.time_zone,
            "month_end_minutes": Decimal(instance.month_end_target_seconds) / 60 if instance.month_end_target_seconds else None,
            "month_end_days_before": instance.month_end_days_before, "month_end_days_after": instance.month_end_days_after,
        }
        super().__init__(*args, initial=initial, **kwargs)
        self.instance = instance

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        data["target_seconds"] = int(data.pop("target_minutes") * 60)
        month_end = data.pop("month_end_minutes")
        data["month_end_target_seconds"] = int(month_end * 60) if month_end else None
        return data
