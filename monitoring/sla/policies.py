"""SLA policies in time: when a flow must be finished (24×7 or a business calendar with
holidays, and the stricter month-end close target).

The engine calls `sla_due_at(flow_type, started_at)` when a flow starts and stores the result
on `FlowRun.sla_due_at`.
"""

from __future__ import annotations

import calendar as _calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

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
