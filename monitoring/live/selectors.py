"""Live operational state, as on-call needs it: is each connected system answering, which
flow steps wait to retry (when next, with how many attempts left), and the outage banner every
page shows.

A system is **down** while its circuit is open (or half-open) and no call to it has succeeded
since the circuit opened; it is **degraded** while at least `CONNECTOR_DEGRADED["error_rate"]`
of its calls in the last `window_seconds` failed for a system reason (unavailable, timeout,
rate limit, auth — not a record the system refused), out of at least `min_calls` calls (counted
from when its circuit last closed, if that is later: an outage that ended is not an error rate).
"Last success" is the last call that succeeded (the call records), not the last flow step.

Every read is bounded and indexed: the circuit rows (one per system), the call records of the
last minutes (BRIN on `at`), the last successful call per system (the (system, at) index read
backwards), and the waiting steps (the partial index on retry steps).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Min
from django.utils import timezone

from sync.flows.registry import flow_for
from sync.models import ConnectorCall, ConnectorState, ErrorClass, FlowStep, System

SYSTEM_ERRORS = (ErrorClass.UNAVAILABLE, ErrorClass.TIMEOUT, ErrorClass.RATE_LIMIT, ErrorClass.AUTH)
ROLE_LABELS = {"crm": "CRM", "billing": "billing", "erp": "ERP"}
# what a stop of each role holds up, in business words (the banner for every role)
ROLE_IMPACT = {
    "erp": "sales orders, invoices and payments are not reaching the ERP",
    "billing": "subscriptions and invoices are not reaching billing",
    "crm": "status updates to the CRM are delayed",
}
WAITING_SHOWN = 20


def _config() -> dict:
    return settings.CONNECTOR_DEGRADED


def _role_of(system: str) -> str:
    return next((role for role, name in settings.CONNECTOR_ROLES.items() if name == system), "")


def _label(system: str) -> str:
    return dict(System.choices).get(system, system)


# --- connectors -----------------------------------------------------------------------------------
def _recent_calls(since: datetime) -> dict[str, dict]:
    """Calls and system failures per system since `since` — or since its circuit last closed, if
    later: the failures that opened a circuit are not an error rate once the outage is over."""
    calls, states = ConnectorCall._meta.db_table, ConnectorState._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT c.system, count(*), count(*) FILTER (WHERE c.error_class = ANY(%s))
            FROM {calls} c LEFT JOIN {states} s ON s.system = c.system
            WHERE c.at >= %s AND (s.closed_at IS NULL OR c.at >= s.closed_at)
            GROUP BY c.system
            """,
            [[str(c) for c in SYSTEM_ERRORS], since],
        )
        return {system: {"calls": calls, "failed": failed} for system, calls, failed in cursor.fetchall()}


def last_successful_calls(systems: list[str]) -> dict[str, datetime | None]:
    """The last call to each system that succeeded (one backwards index step per system)."""
    if not systems:
        return {}
    table = ConnectorCall._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.system, (SELECT c.at FROM {table} c WHERE c.system = s.system AND c.error_class = '' ORDER BY c.at DESC LIMIT 1)
            FROM unnest(%s::text[]) AS s(system)
            """,
            [systems],
        )
        return dict(cursor.fetchall())


def failing_since(system: str, last_ok: datetime | None) -> datetime | None:
    """When the current run of failures began: the first failed call after the last successful
    one (the circuit's own opened_at moves each time a probe fails and it opens again)."""
    table = ConnectorCall._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT at FROM {table} WHERE system = %s AND error_class = ANY(%s) AND at > coalesce(%s, '-infinity'::timestamptz) ORDER BY at LIMIT 1",
            [system, [str(c) for c in SYSTEM_ERRORS], last_ok],
        )
        row = cursor.fetchone()
        return row[0] if row else None


def waiting_by_system() -> dict[str, dict]:
    """Steps waiting to retry, per system: how many and when the soonest tries again."""
    rows = FlowStep.objects.filter(status=FlowStep.Status.RETRY).order_by().values("system").annotate(n=Count("id"), next_attempt_at=Min("next_attempt_at"))
    return {r["system"]: {"n": r["n"], "next_attempt_at": r["next_attempt_at"]} for r in rows}


def connector_status(*, now: datetime | None = None) -> list[dict]:
    """Per connected system (the hub's own steps excluded): the circuit, recent failures, the
    last successful call, waiting steps, and the verdict: ok, degraded or down, with a reason."""
    now = now or timezone.now()
    config = _config()
    states = {s.system: s for s in ConnectorState.objects.exclude(system=System.HUB)}
    recent = _recent_calls(now - timedelta(seconds=config["window_seconds"]))
    waiting = waiting_by_system()
    systems = sorted((set(states) | set(recent) | set(settings.CONNECTOR_ROLES.values()) | set(waiting)) - {System.HUB, ""})
    last_ok = last_successful_calls(systems)
    out = []
    for system in systems:
        state = states.get(system)
        calls = recent.get(system, {"calls": 0, "failed": 0})
        ok_at = last_ok.get(system) or (state.last_success_at if state else None)
        error_rate = calls["failed"] / calls["calls"] if calls["calls"] else None
        circuit = state.circuit if state else ConnectorState.Circuit.CLOSED
        opened_at = state.opened_at if state else None
        answered_since_open = bool(ok_at and opened_at and ok_at > opened_at)
        if circuit != ConnectorState.Circuit.CLOSED and not answered_since_open:
            verdict = "down"
            since = failing_since(system, ok_at) or opened_at or (state.last_error_at if state else None)
            reason = f"{_label(system)} is not answering: its circuit is {'open' if circuit == ConnectorState.Circuit.OPEN else 'half-open (probing)'}"
        elif error_rate is not None and calls["calls"] >= config["min_calls"] and error_rate >= config["error_rate"]:
            verdict = "degraded"
            since = None
            reason = f"{_label(system)} failed {error_rate:.0%} of {calls['calls']} calls in the last {config['window_seconds'] // 60} min"
        else:
            verdict, since, reason = "ok", None, ""
        role = _role_of(system)
        out.append(
            {
                "system": system,
                "label": _label(system),
                "state": state,  # the ConnectorState row (None before the first call)
                "role": role,
                "role_label": ROLE_LABELS.get(role, ""),
                "status": verdict,
                "reason": reason,
                "since": since,
                "circuit": circuit,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "recent_calls": calls["calls"],
                "recent_failed": calls["failed"],
                "recent_error_rate": None if error_rate is None else round(error_rate, 4),
                "last_success_at": ok_at,
                "last_error": state.last_error if state else "",
                "last_error_at": state.last_error_at if state else None,
                "waiting_steps": waiting.get(system, {}).get("n", 0),
                "next_attempt_at": waiting.get(system, {}).get("next_attempt_at"),
            }
        )
    return out


def outage_banner() -> list[dict]:
    """The systems that are down or degraded now (cached a few seconds per process: every page
    asks). Empty when all is well."""
    key = "live:outage-banner"
    found = cache.get(key) if settings.LIVE_BANNER_CACHE_SECONDS else None
    if found is None:
        found = [{k: v for k, v in c.items() if k != "state"} for c in connector_status() if c["status"] != "ok"]
        for c in found:
            c["impact"] = ROLE_IMPACT.get(c["role"], f"work that needs {c['label']} is waiting")
        cache.set(key, found, settings.LIVE_BANNER_CACHE_SECONDS)
    return found


def connectors_health() -> dict:
    """/healthz's `connectors` section (settings.HEALTH_DETAILS): "degraded" with the reason while
    any system is down or degraded — the hub itself is alive (HTTP 200), its work is waiting."""
    systems = connector_status()
    bad = [c for c in systems if c["status"] != "ok"]

    def iso(value):
        return value.isoformat() if value else None

    return {
        "status": "degraded" if bad else "ok",
        "reason": "; ".join(c["reason"] + (f" since {iso(c['since'])}" if c["since"] else "") for c in bad),
        "systems": {
            c["system"]: {
                "status": c["status"],
                "circuit": c["circuit"],
                "down_since": iso(c["since"]),
                "recent_calls": c["recent_calls"],
                "recent_error_rate": c["recent_error_rate"],
                "last_success_at": iso(c["last_success_at"]),
                "last_error": c["last_error"][:300],
                "waiting_steps": c["waiting_steps"],
                "next_attempt_at": iso(c["next_attempt_at"]),
            }
            for c in systems
        },
    }


# --- waiting steps ----------------------------------------------------------------------------------
def attempt_limit(flow_type: str, step_name: str, system: str) -> int | None:
    """The attempts the step's RetryPolicy allows when it talks to `system` (None: no limit)."""
    try:
        definition = next(s for s in flow_for(flow_type).steps if s.name == step_name)
    except (KeyError, StopIteration):
        return None
    return definition.retry_policy(system).max_attempts


def with_attempts(step: FlowStep, flow_type: str) -> FlowStep:
    """Annotate a step with `max_attempts`, `attempts_left` and whether it waits on an open circuit
    (a wait that spends no attempt)."""
    step.max_attempts = attempt_limit(flow_type, step.name, step.system)
    step.attempts_left = None if step.max_attempts is None else max(step.max_attempts - step.attempts, 0)
    step.paused_by_circuit = step.status == FlowStep.Status.RETRY and "circuit open" in (step.error_message or "")
    return step


def waiting_steps(*, limit: int = WAITING_SHOWN, system: str = "") -> dict:
    """Steps waiting to retry: the total, per system, and the `limit` that try next, each with its
    next attempt time and attempts left."""
    qs = FlowStep.objects.filter(status=FlowStep.Status.RETRY)
    if system:
        qs = qs.filter(system=system)
    by_system = waiting_by_system()
    if system:
        by_system = {k: v for k, v in by_system.items() if k == system}
    rows = list(
        qs.select_related("flow_run")
        .only(
            "id",
            "name",
            "system",
            "status",
            "attempts",
            "next_attempt_at",
            "error_class",
            "error_message",
            "flow_run__id",
            "flow_run__flow_type",
            "flow_run__document_number",
            "flow_run__account_name",
        )
        .order_by("next_attempt_at", "id")[:limit]
    )
    for step in rows:
        with_attempts(step, step.flow_run.flow_type)
    total = sum(v["n"] for v in by_system.values())
    return {
        "total": total,
        "by_system": [{"system": s, "label": _label(s), **v} for s, v in sorted(by_system.items(), key=lambda kv: -kv[1]["n"])],
        "next_attempt_at": min((v["next_attempt_at"] for v in by_system.values() if v["next_attempt_at"]), default=None),
        "steps": rows,
        "more": max(total - len(rows), 0),
    }
