"""Hourly KPI rollups of settled flow runs, and how readers combine them with raw rows.

Why: at a million flow runs, every KPI over a 30-day window would otherwise read ~80k rows per
query and the Overview runs a dozen such queries twice (this period and the previous one).
`monitoring_flowrollup` holds one row per UTC hour × flow type × legal entity × currency with
counts and the durations themselves (arrays), so percentiles stay exact.

What is rolled up: flow runs that are *settled* (completed or cancelled). Their figures do not
depend on "now". Unsettled runs (pending, running, waiting, parked, failed) are always read
raw — they are few and have their own indexes.

How readers stay exact (see `RollupPlan`):
- the window is cut into whole hours that are rolled up and clean, and the rest (the window's
  ragged edges, hours after the watermark, dirty hours), which are read from sync_flowrun;
- a trigger on sync_flowrun (monitoring migration 0004) marks an hour *dirty* whenever a settled run with a timestamp in it
  is inserted, changed (in a column the rollups use) or deleted, once that hour may already have
  been rolled up — a late event, a replay, a purge. Readers treat dirty hours as raw until
  `refresh()` recomputes them;
- the refresh only rolls hours that ended `ROLL_AFTER` ago, and the trigger marks hours that ended
  `MARK_AFTER` before the writing transaction began, so a change is missed only by a transaction
  open longer than the difference (15 minutes); the engine's transactions last milliseconds.
- timezones: daily charts group by the viewer's local day. Hour buckets map onto local days
  exactly when the zone's offset is a whole number of hours throughout the window; otherwise
  (e.g. Asia/Kolkata) the readers use raw rows only.

`refresh()` runs from beat every minute (`monitoring.refresh_rollups`); the first run builds
the whole history in week-sized statements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from monitoring.models import FlowRollup, RollupDirtyHour, RollupState
from sync.models import FlowRun

from .sql import FLOW_TABLE, SETTLED

HOUR = timedelta(hours=1)
ROLL_AFTER = timedelta(minutes=20)
MARK_AFTER = timedelta(minutes=5)
BUILD_CHUNK = timedelta(days=7)

ROLLUP_TABLE = FlowRollup._meta.db_table
DIRTY_TABLE = RollupDirtyHour._meta.db_table


# --- building ----------------------------------------------------------------------------------
def _floor_hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(value: datetime) -> datetime:
    floor = _floor_hour(value)
    return floor if floor == value else floor + HOUR


def ranges_sql(column: str, ranges: list[tuple[datetime, datetime]]) -> tuple[str, list]:
    if not ranges:
        return "false", []
    sql = " OR ".join(f"({column} >= %s AND {column} < %s)" for _ in ranges)
    return f"({sql})", [v for r in ranges for v in r]


def _merge(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hour starts → contiguous [start, end) ranges."""
    out: list[list[datetime]] = []
    for h in sorted(set(hours)):
        if out and out[-1][1] == h:
            out[-1][1] = h + HOUR
        else:
            out.append([h, h + HOUR])
    return [(a, b) for a, b in out]


def _rebuild(ranges: list[tuple[datetime, datetime]]) -> None:
    """Recompute the rollup rows of these hour ranges from sync_flowrun (inside a transaction)."""
    if not ranges:
        return
    hours_sql, hours_params = ranges_sql("hour", ranges)
    started_sql, started_params = ranges_sql("f.business_started_at", ranges)
    completed_sql, completed_params = ranges_sql("f.business_completed_at", ranges)
    due_sql, due_params = ranges_sql("f.sla_due_at", ranges)
    types = [t for t, _ in FlowRun._meta.get_field("flow_type").choices]
    duration = "extract(epoch FROM f.business_completed_at - f.business_started_at)::float8"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ROLLUP_TABLE} WHERE {hours_sql}", hours_params)
        cursor.execute(
            f"""
            INSERT INTO {ROLLUP_TABLE} (hour, flow_type, legal_entity, currency, started, started_with_exception, started_completed,
                started_first_pass, started_cancelled, started_durations, completed, completed_durations, due, due_met)
            SELECT hour, flow_type, legal_entity, currency,
                   count(*) FILTER (WHERE fact = 's'),
                   count(*) FILTER (WHERE fact = 's' AND had_exception),
                   count(*) FILTER (WHERE fact = 's' AND status = 'completed'),
                   count(*) FILTER (WHERE fact = 's' AND status = 'completed' AND NOT had_exception),
                   count(*) FILTER (WHERE fact = 's' AND status = 'cancelled'),
                   coalesce(array_agg(d) FILTER (WHERE fact = 's' AND status = 'completed'), '{{}}'),
                   count(*) FILTER (WHERE fact = 'c'),
                   coalesce(array_agg(d) FILTER (WHERE fact = 'c'), '{{}}'),
                   count(*) FILTER (WHERE fact = 'd'),
                   count(*) FILTER (WHERE fact = 'd' AND met)
            FROM (
                SELECT 's' AS fact, date_trunc('hour', f.business_started_at, 'UTC') AS hour, f.flow_type, f.legal_entity, f.currency,
                       f.status, f.had_exception, CASE WHEN f.status = 'completed' THEN {duration} END AS d, false AS met
                  FROM {FLOW_TABLE} f WHERE f.flow_type = ANY(%s) AND f.status IN {SETTLED} AND {started_sql}
                UNION ALL
                SELECT 'c', date_trunc('hour', f.business_completed_at, 'UTC'), f.flow_type, f.legal_entity, f.currency,
                       f.status, f.had_exception, {duration}, false
                  FROM {FLOW_TABLE} f WHERE f.flow_type = ANY(%s) AND f.status = 'completed' AND {completed_sql}
                UNION ALL
                SELECT 'd', date_trunc('hour', f.sla_due_at, 'UTC'), f.flow_type, f.legal_entity, f.currency,
                       f.status, f.had_exception, NULL, f.business_completed_at <= f.sla_due_at
                  FROM {FLOW_TABLE} f WHERE f.flow_type = ANY(%s) AND f.status = 'completed' AND {due_sql}
            ) t
            GROUP BY 1, 2, 3, 4
            """,
            [types, *started_params, types, *completed_params, types, *due_params],
        )


def refresh(now: datetime | None = None) -> dict:
    """Roll up the hours that ended ROLL_AFTER ago and recompute the dirty ones. Idempotent;
    concurrent calls serialise on the state row."""
    began = time.monotonic()
    now = now or timezone.now()
    target = _floor_hour(now - ROLL_AFTER)
    with transaction.atomic():
        state = RollupState.objects.select_for_update().filter(pk=1).first()
        if state is None:
            RollupState.objects.bulk_create([RollupState(pk=1)], ignore_conflicts=True)
            state = RollupState.objects.select_for_update().get(pk=1)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {DIRTY_TABLE} WHERE hour < %s RETURNING hour", [target])
            dirty = [row[0] for row in cursor.fetchall()]
        ranges: list[tuple[datetime, datetime]] = []
        if state.watermark is None:
            first = FlowRun.objects.order_by("business_started_at").values_list("business_started_at", flat=True).first()
            cursor_at = _floor_hour(first) if first else target
            while cursor_at < target:  # the first build: a week per statement keeps each one small
                upper = min(cursor_at + BUILD_CHUNK, target)
                _rebuild([(cursor_at, upper)])
                ranges.append((cursor_at, upper))
                cursor_at = upper
        else:
            new = [(state.watermark, target)] if state.watermark < target else []
            ranges = new + [r for r in _merge([h for h in dirty if h < state.watermark])]
            _rebuild(ranges)
        hours = int(sum((b - a).total_seconds() for a, b in ranges) // 3600)
        state.watermark = max(target, state.watermark) if state.watermark else target
        state.refreshed_at = now
        state.last_hours = hours
        state.last_seconds = round(time.monotonic() - began, 3)
        state.save()
    return {"watermark": state.watermark.isoformat(), "hours": hours, "dirty": len(dirty), "seconds": state.last_seconds}


def reset() -> None:
    """Forget every rollup (the next refresh rebuilds all history)."""
    with transaction.atomic():
        FlowRollup.objects.all().delete()
        RollupDirtyHour.objects.all().delete()
        RollupState.objects.filter(pk=1).update(watermark=None)


# --- reading -----------------------------------------------------------------------------------
def whole_hour_offsets(tz_name: str, start: datetime, end: datetime) -> bool:
    """True when `tz_name`'s UTC offset is a whole number of hours at every moment of [start, end)."""
    try:
        zone = ZoneInfo(tz_name)
    except Exception:
        return False
    step = timedelta(days=1) if end - start <= timedelta(days=800) else timedelta(days=7)
    at = start
    while True:
        offset = at.astimezone(zone).utcoffset() or timedelta(0)
        if offset.total_seconds() % 3600:
            return False
        if at >= end:
            return True
        at = min(at + step, end)


@dataclass(frozen=True)
class RollupPlan:
    """How one window is read: rollup rows for [rolled_from, rolled_to) except `dirty` hours,
    raw rows for `raw_ranges` (everything else in the window). Rolled ranges hold settled runs
    only, so readers add the unsettled runs inside them from the raw table."""

    rolled_from: datetime | None
    rolled_to: datetime | None
    dirty: tuple[datetime, ...]
    raw_ranges: tuple[tuple[datetime, datetime], ...]

    @property
    def uses_rollup(self) -> bool:
        return self.rolled_from is not None


def plan(start: datetime, end: datetime, tz_name: str) -> RollupPlan:
    raw_only = RollupPlan(None, None, (), ((start, end),))
    if not getattr(settings, "KPI_ROLLUPS", True) or not whole_hour_offsets(tz_name, start, end):
        return raw_only
    state = RollupState.objects.filter(pk=1).values_list("watermark", flat=True).first()
    if state is None:
        return raw_only
    first, last = _ceil_hour(start), min(_floor_hour(end), state)
    if first >= last:
        return raw_only
    dirty = tuple(RollupDirtyHour.objects.filter(hour__gte=first, hour__lt=last).order_by("hour").values_list("hour", flat=True))
    raw = [(start, first)] if start < first else []
    raw += _merge(list(dirty))
    if last < end:
        raw.append((last, end))
    merged: list[list[datetime]] = []
    for a, b in sorted(raw):
        if merged and merged[-1][1] >= a:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return RollupPlan(first, last, dirty, tuple((a, b) for a, b in merged))


def health() -> dict:
    """For /healthz (settings.HEALTH_DETAILS), informational: how far the rollups lag (beat
    refreshes them every minute). A stale rollup makes dashboards slower, never wrong."""
    state = RollupState.objects.filter(pk=1).first()
    if state is None or state.refreshed_at is None:
        return {"refreshed_at": None, "note": "not built yet: beat builds them within a minute of starting"}
    return {
        "refreshed_at": state.refreshed_at.isoformat(),
        "seconds_since_refresh": round((timezone.now() - state.refreshed_at).total_seconds()),
        "rolled_up_to": state.watermark.isoformat() if state.watermark else None,
        "dirty_hours": RollupDirtyHour.objects.count(),
    }
