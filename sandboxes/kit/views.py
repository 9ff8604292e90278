"""/__sandbox__/: a sandbox's fault controls, as a JSON API and a small page."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from .faults import fault_config
from .models import FaultConfig

FIELDS = ("error_rate", "latency_ms", "outage", "rate_limit_retry_after", "rate_limit_requests", "fail_records", "search_lag_seconds", "garble_responses")


def _as_dict(config: FaultConfig) -> dict:
    return {"system": config.system, **{f: getattr(config, f) for f in FIELDS}}


def _apply(config: FaultConfig, data: dict) -> dict:
    errors = {}
    for name in FIELDS:
        if name not in data:
            continue
        value = data[name]
        try:
            if name == "outage":
                value = value if isinstance(value, bool) else str(value).lower() in {"1", "true", "on", "yes"}
            elif name == "error_rate":
                value = float(value)
                if not 0 <= value <= 1:
                    raise ValueError("must be between 0 and 1")
            elif name == "fail_records":
                value = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
            else:
                value = int(value)
        except (TypeError, ValueError) as exc:
            errors[name] = str(exc) or "invalid"
            continue
        setattr(config, name, value)
    if not errors:
        config.save()
    return errors


def control_views(system: str):
    @csrf_exempt
    def faults(request: HttpRequest) -> HttpResponse:
        config = fault_config(system)
        if request.method in ("PUT", "PATCH", "POST"):
            try:
                data = json.loads(request.body or b"{}")
            except ValueError:
                return JsonResponse({"error": "body must be JSON"}, status=400)
            errors = _apply(config, data)
            if errors:
                return JsonResponse({"errors": errors}, status=400)
        return JsonResponse(_as_dict(config))

    @csrf_exempt
    def reset(request: HttpRequest) -> HttpResponse:
        FaultConfig.objects.filter(system=system).delete()
        return JsonResponse(_as_dict(fault_config(system)))

    @csrf_exempt
    def page(request: HttpRequest) -> HttpResponse:
        config = fault_config(system)
        errors = _apply(config, {**request.POST.dict(), "outage": "outage" in request.POST}) if request.method == "POST" else {}
        # Rendered without the request's context processors: those are the portal's (its
        # navigation reverses portal URLs this server's URLconf lacks), and a browser logged in
        # to the portal on the same host sends its session cookie here too.
        return HttpResponse(render_to_string("sandbox_kit/faults.html", {"config": config, "system": system, "errors": errors}))

    return faults, reset, page


def control_urls(system: str) -> list:
    faults, reset, page = control_views(system)
    return [
        path("__sandbox__/", page, name=f"{system}-sandbox-page"),
        path("__sandbox__/faults", faults, name=f"{system}-sandbox-faults"),
        path("__sandbox__/reset", reset, name=f"{system}-sandbox-reset"),
    ]
