"""Fault injection and idempotency replay, shared by every sandbox.

A sandbox view is wrapped with `sandbox_endpoint(system, error)`, where `error` builds
an error response in that vendor's own format: `error(status, code, message, field)`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from functools import wraps

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from sandboxes.db import DB, connection

from .models import FaultConfig, IdempotencyRecord

ErrorBuilder = Callable[[int, str, str, str], HttpResponse]


def fault_config(system: str) -> FaultConfig:
    config, _ = FaultConfig.objects.get_or_create(system=system)
    return config


def injected_fault(system: str, request: HttpRequest, error: ErrorBuilder) -> HttpResponse | None:
    """The response a fault dictates for this request, or None to serve it normally."""
    config = fault_config(system)
    if config.latency_ms:
        time.sleep(config.latency_ms / 1000)
    if config.outage:
        return error(503, "SERVICE_UNAVAILABLE", f"The {system} service is temporarily unavailable (sandbox outage).", "")
    if config.rate_limit_retry_after:
        limited = config.rate_limit_requests == -1 or (
            config.rate_limit_requests > 0
            and FaultConfig.objects.filter(pk=config.pk, rate_limit_requests__gt=0).update(rate_limit_requests=F("rate_limit_requests") - 1) == 1
        )
        if limited:
            response = error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests. Retry after the interval in Retry-After.", "")
            response["Retry-After"] = str(config.rate_limit_retry_after)
            return response
    if request.method not in ("GET", "HEAD") and config.error_rate and random.random() < config.error_rate:
        return error(500, "UNKNOWN_EXCEPTION", f"An unexpected error occurred in {system} (sandbox error rate).", "")
    return None


GARBAGE = '{"o:garbled": true, "detail": "\\u0000\\ufffd<html>upstream proxy</html>"}'


def garbled(system: str, response: HttpResponse) -> HttpResponse:
    """The garble_responses fault: a successful answer (the work is done) replaced by a 200 whose
    JSON body means nothing and that carries no Location — what a misbehaving proxy or a vendor
    bug sends back after a write succeeded."""
    if response.status_code >= 300:
        return response
    if not FaultConfig.objects.filter(system=system, garble_responses__gt=0).update(garble_responses=F("garble_responses") - 1):
        return response
    return HttpResponse(GARBAGE, status=200, content_type="application/json")


def failing_record(system: str, *keys: str) -> str | None:
    """The first of `keys` listed in the sandbox's fail_records, if any."""
    wanted = {str(k) for k in keys if k}
    if not wanted:
        return None
    for key in fault_config(system).fail_records or []:
        if str(key) in wanted:
            return str(key)
    return None


def sandbox_endpoint(system: str, error: ErrorBuilder, *, garble: bool = True):
    """Wrap a sandbox view: no CSRF (machine clients), faults applied first; `garble=False` keeps
    the view's answers out of the garble_responses fault (queries, which write nothing)."""

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            fault = injected_fault(system, request, error)
            if fault is not None:
                return fault
            response = view(request, *args, **kwargs)
            return garbled(system, response) if garble else response

        return wrapped

    return decorate


def fingerprint(request: HttpRequest) -> str:
    return hashlib.sha256(request.method.encode() + request.path.encode() + b"\0" + request.body).hexdigest()


def idempotent(
    system: str,
    request: HttpRequest,
    key: str | None,
    produce: Callable[[], HttpResponse],
    *,
    mismatch: Callable[[], HttpResponse],
    store_status: Callable[[int], bool] = lambda s: True,
) -> HttpResponse:
    """Serve `produce()` once per key; later requests with the key replay the first response.

    Concurrent requests with one key are serialised by an advisory lock. A key reused with
    different parameters gets `mismatch()`. `store_status` says which results are kept
    (Stripe keeps 500s but not validation failures).
    """
    if not key:
        return produce()
    fp = fingerprint(request)
    with transaction.atomic(using=DB):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{system}:{key}"])
        existing = IdempotencyRecord.objects.filter(system=system, key=key).first()
        if existing is not None:
            if existing.request_fingerprint != fp:
                return mismatch()
            response = HttpResponse(existing.body, status=existing.status_code, content_type=existing.content_type)
            for name, value in existing.headers.items():
                response[name] = value
            response["Idempotent-Replayed"] = "true"
            return response
        response = produce()
        if store_status(response.status_code):
            headers = {h: response[h] for h in ("Location",) if response.has_header(h)}
            try:
                with transaction.atomic(using=DB):
                    IdempotencyRecord.objects.create(
                        system=system,
                        key=key,
                        request_fingerprint=fp,
                        status_code=response.status_code,
                        body=response.content.decode(),
                        content_type=response.get("Content-Type", "application/json"),
                        headers=headers,
                    )
            except IntegrityError:
                pass
        return response


def json_body(request: HttpRequest) -> dict:
    try:
        return json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
