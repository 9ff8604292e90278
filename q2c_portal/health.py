"""/healthz: is PostgreSQL answering, is the broker answering: 503 with the reason when not.
Otherwise 200, "ok" — or "degraded" with the reason when an informational section says so
(a connected system down: the hub is alive, its work waits)."""

from __future__ import annotations

import time
from functools import cache

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _check(fn) -> dict:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 — any failure is the answer
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "ms": round((time.perf_counter() - started) * 1000, 1)}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


@cache
def _details() -> dict:
    """Informational sections from the apps above (settings.HEALTH_DETAILS: name → dotted path of
    a function returning a dict), imported by name so this module imports no app."""
    return {name: import_string(path) for name, path in settings.HEALTH_DETAILS.items()}


@never_cache
@require_GET
def healthz(request):
    checks = {"postgres": _check(_postgres), "broker": _check(_broker)}
    healthy = all(c["ok"] for c in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    degraded = []
    if checks["postgres"]["ok"]:
        for name, detail in _details().items():
            try:
                body[name] = detail()
            except Exception as exc:  # noqa: BLE001 — informational only
                body[name] = {"error": f"{type(exc).__name__}: {exc}"}
            section = body[name]
            if isinstance(section, dict) and section.get("status") == "degraded":
                degraded.append(f"{name}: {section.get('reason') or 'degraded'}")
    if not healthy:
        body["reason"] = "; ".join(f"{name} is down ({c['error']})" for name, c in checks.items() if not c["ok"])
    elif degraded:
        # alive (200: a liveness probe must not restart the hub because NetSuite is down), but
        # its work is waiting: say so, and why
        body["status"] = "degraded"
        body["reason"] = "; ".join(degraded)
    return JsonResponse(body, status=200 if healthy else 503)
