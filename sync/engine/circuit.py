"""Per-connector circuit breaker: after N consecutive `unavailable` errors the connector
pauses and its steps wait (without burning retries) until a probe succeeds."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from sync.audit import audit_record
from sync.models import ConnectorState, ErrorClass

THRESHOLD = settings.SYNC_ENGINE["CIRCUIT_THRESHOLD"]
COOLDOWN_SECONDS = settings.SYNC_ENGINE["CIRCUIT_COOLDOWN_SECONDS"]


SUCCESS_WRITE_SECONDS = 5.0
# Per process: systems whose circuit was closed with no failures when last read, and until when
# their last success is fresh enough not to be written again. Every successful call used to
# UPDATE the system's one ConnectorState row, twice: all workers queued on that row's lock.
_clean_at_read: dict[str, bool] = {}
_success_written_until: dict[str, float] = {}


def _state(system: str) -> ConnectorState:
    state, _ = ConnectorState.objects.get_or_create(system=system)
    return state


def circuit_wait_seconds(system: str) -> float:
    """0 when calls may go ahead; otherwise how long the circuit stays open."""
    state = _state(system)
    _clean_at_read[system] = state.circuit == ConnectorState.Circuit.CLOSED and state.consecutive_failures == 0
    if state.circuit != ConnectorState.Circuit.OPEN or state.opened_at is None:
        return 0.0
    remaining = (state.opened_at + timedelta(seconds=COOLDOWN_SECONDS) - timezone.now()).total_seconds()
    if remaining <= 0:
        # cooldown over: let probes through (half-open); a success closes, a failure reopens
        ConnectorState.objects.filter(pk=state.pk, circuit=ConnectorState.Circuit.OPEN).update(circuit=ConnectorState.Circuit.HALF_OPEN)
        return 0.0
    return remaining


def circuit_record_success(system: str) -> None:
    """Close the circuit and reset the failure count; when the circuit was already closed and
    clean just before this call, only refresh last_success_at every SUCCESS_WRITE_SECONDS."""
    if _clean_at_read.get(system) and _success_written_until.get(system, 0) > time.monotonic():
        return
    _success_written_until[system] = time.monotonic() + SUCCESS_WRITE_SECONDS
    now = timezone.now()
    changed = (
        ConnectorState.objects.filter(system=system)
        .exclude(circuit=ConnectorState.Circuit.CLOSED)
        .update(circuit=ConnectorState.Circuit.CLOSED, consecutive_failures=0, opened_at=None, closed_at=now, last_success_at=now)
    )
    if changed:
        audit_record(object_type="connector", object_id=system, action="circuit_closed", after={"circuit": ConnectorState.Circuit.CLOSED})
    else:
        ConnectorState.objects.filter(system=system).update(consecutive_failures=0, last_success_at=now)


def circuit_record_failure(system: str, error_class: str, message: str) -> None:
    _success_written_until.pop(system, None)
    _clean_at_read[system] = False
    now = timezone.now()
    _state(system)
    if error_class != ErrorClass.UNAVAILABLE:
        ConnectorState.objects.filter(system=system).update(last_error_at=now, last_error=message[:2000])
        return
    ConnectorState.objects.filter(system=system).update(consecutive_failures=F("consecutive_failures") + 1, last_error_at=now, last_error=message[:2000])
    opened = (
        ConnectorState.objects.filter(system=system, consecutive_failures__gte=THRESHOLD)
        .exclude(circuit=ConnectorState.Circuit.OPEN)
        .update(circuit=ConnectorState.Circuit.OPEN, opened_at=now)
    )
    if opened:
        audit_record(object_type="connector", object_id=system, action="circuit_opened", after={"circuit": ConnectorState.Circuit.OPEN}, note=message[:500])
