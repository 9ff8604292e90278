"""/healthz: is PostgreSQL answering, is the broker answering. 200 or 503 with detail."""

from __future__ import annotations

import time

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
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


def _kpi_rollups() -> dict:
    """Informational: how far the KPI rollups lag (beat refreshes them every minute). A stale
    rollup makes dashboards slower, never wrong, so it does not fail the check."""
    from django.utils import timezone

    from monitoring.models import RollupDirtyHour, RollupState

    state = RollupState.objects.filter(pk=1).first()
    if state is None or state.refreshed_at is None:
        return {"refreshed_at": None, "note": "not built yet: beat builds them within a minute of starting"}
    return {
        "refreshed_at": state.refreshed_at.isoformat(), "seconds_since_refresh": round((timezone.now() - state.refreshed_at).total_seconds()),
        "rolled_up_to": state.watermark.isoformat() if state.watermark else None, "dirty_hours": RollupDirtyHour.objects.count(),
    }


@never_cache
@require_GET
def healthz(request):
    checks = {"postgres": _check(_postgres), "broker": _check(_broker)}
    healthy = all(c["ok"] for c in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    if checks["postgres"]["ok"]:
        try:
            body["kpi_rollups"] = _kpi_rollups()
        except Exception as exc:  # noqa: BLE001 — informational only
            body["kpi_rollups"] = {"error": f"{type(exc).__name__}: {exc}"}
    if not healthy:
        body["reason"] = "; ".join(f"{name} is down ({c['error']})" for name, c in checks.items() if not c["ok"])
    return JsonResponse(body, status=200 if healthy else 503)
