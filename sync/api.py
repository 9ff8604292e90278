"""Sync engine API: event ingestion, vendor webhooks, flow traces, event contracts, replay.

Every accepted event is in PostgreSQL before the 2xx. Bad input gets RFC 7807
problem+json naming each bad field, and nothing of a rejected item is stored.
"""

from __future__ import annotations

import calendar
import json
import logging

from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from q2c_portal.api import PROBLEM_JSON, StandardPagination, has_perm, problem
from q2c_portal.redaction import redact
from q2c_portal.throttling import SharedRateMixin, WebhookThrottle
from sync.canonical.contracts import DEPRECATED, contract, contracts, sunset_problems
from sync.canonical.events import SCHEMA_DIR, event_types, schema, validate_envelope
from sync.connectors.errors import ConnectorError
from sync.connectors.registry import get_connector
from sync.models import AuditEntry, FlowRun, InboxEvent
from sync.scopes import audit_refusal, refusals

from .engine.inbox import accept_canonical, accept_raw, inbox_replay
from .filters import FlowRunApiFilterSet

log = logging.getLogger(__name__)
MAX_BATCH = 1000

ENVELOPE_EXAMPLE = {
    "id": "evt-2026-11-23-0001",
    "type": "order.closed_won.v2",
    "source": "crm-relay",
    "occurred_at": "2026-11-23T10:15:00Z",
    "data": {
        "order_number": "ORD-1042",
        "account": {"external_id": "001A000001", "name": "Globex Corporation"},
        "currency": "USD",
        "legal_entity": "US01",
        "closed_won_at": "2026-11-23T10:14:00Z",
        "deal_id": "006A000001",
        "lines": [{"sku": "PLAT-SEAT", "quantity": "25", "unit_price": "40.00", "charge_type": "recurring", "interval": "month"}],
        "tax_lines": [{"jurisdiction": "US-CA", "rate": "7.25", "amount": "870.00", "currency": "USD"}],
    },
}


class IngestThrottle(SharedRateMixin, UserRateThrottle):
    """One budget per integration user across the ingestion endpoints (settings: INGEST_THROTTLE),
    shared by every web process (Redis cache)."""

    scope = "ingest"


def _out_of_scope(request, envelopes: list, *, indexed: bool) -> Response | None:
    """403 problem (and an audit row) when the credential may not send one of these events (sync/scopes.py)."""
    denied = refusals(request.user, envelopes, indexed=indexed)
    if not denied:
        return None
    audit_refusal(request, envelopes, denied)
    return problem(403, "Outside this credential's scope", "; ".join(p["message"] for p in denied[:3]), denied)


def _ingest_problems(envelope) -> list[dict]:
    """What refuses one envelope at ingest: its schema, then its version's sunset (sync/canonical/contracts.py)."""
    return validate_envelope(envelope) or sunset_problems(envelope)


def _deprecation_headers(response: Response, names) -> Response:
    """An answer about a deprecated contract version carries its Sunset (RFC 8594: the earliest, when
    several) and the current version's schema as Link rel="successor-version", so a sender
    learns before the sunset."""
    old = [c for c in (contract(n) for n in sorted({n for n in names if isinstance(n, str)})) if c is not None and c.status == DEPRECATED]
    if old:
        response["Sunset"] = http_date(calendar.timegm(min(c.sunset for c in old).timetuple()))
        response["Link"] = ", ".join(sorted({f'</api/v1/schemas/{c.current}/>; rel="successor-version"' for c in old}))
    return response


def _types(envelopes: list) -> list:
    return [e.get("type") for e in envelopes if isinstance(e, dict)]


def _body_json(request) -> object:
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"The body is not valid JSON: {exc}") from exc


class AcceptedSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=["accepted", "duplicate"])
    inbox_id = serializers.IntegerField(allow_null=True)
    correlation_id = serializers.UUIDField(allow_null=True)


@extend_schema(
    summary="Accept one canonical event",
    description="The envelope {id, type, source, occurred_at, correlation_id?, data}. The same id from the same source is accepted once, ever "
    "(a repeat answers `duplicate`). The event is stored before the 202. A given correlation_id groups the caller's own events: it is namespaced "
    "by the source (uuid5), and the trace id the hub uses is the `correlation_id` of the answer. Schemas: GET /api/v1/schemas/. "
    "A deprecated contract version is accepted until its sunset (the answer carries Sunset and a successor-version Link); "
    "from the sunset on it is refused with 400 naming the current version (error code `sunset`).",
    request=OpenApiTypes.OBJECT,
    responses={202: AcceptedSerializer, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT},
    examples=[OpenApiExample("closed-won order", value=ENVELOPE_EXAMPLE, request_only=True)],
)
@api_view(["POST"])
@permission_classes([has_perm("sync.add_inboxevent")])
@throttle_classes([IngestThrottle])
def events(request):
    envelope = _body_json(request)
    refused = _out_of_scope(request, [envelope], indexed=False)
    if refused:
        return refused
    problems = _ingest_problems(envelope)
    if problems:
        return problem(400, "Invalid event", "; ".join(f"{p['field'] or 'event'}: {p['message']}" for p in problems[:5]), problems)
    result = accept_canonical([envelope])[0]
    return _deprecation_headers(Response(result, status=202), _types([envelope]))


@extend_schema(
    summary="Accept up to 1,000 canonical events",
    description='Body: {"events": [envelope, …]}. Each item is validated on its own: valid items are stored (accepted or duplicate), '
    "invalid items are reported with their errors and nothing of them is stored. 202 when at least one item was stored or was a duplicate; 400 when every item was rejected; "
    "403 (nothing stored) when any item is outside the credential's scope.",
    request=OpenApiTypes.OBJECT,
    responses={202: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT},
)
@api_view(["POST"])
@permission_classes([has_perm("sync.add_inboxevent")])
@throttle_classes([IngestThrottle])
def events_batch(request):
    body = _body_json(request)
    items = body.get("events") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return problem(
            400,
            "Invalid batch",
            'Send {"events": [ … ]} with 1 to 1000 events.',
            [{"field": "events", "message": "A non-empty list is required.", "code": "required"}],
        )
    if len(items) > MAX_BATCH:
        return problem(
            400,
            "Batch too large",
            f"At most {MAX_BATCH} events per call; got {len(items)}.",
            [{"field": "events", "message": f"At most {MAX_BATCH} items.", "code": "max_items"}],
        )
    refused = _out_of_scope(request, items, indexed=True)
    if refused:  # the whole batch: a relay that mixes in another system's events is misconfigured or compromised
        return refused
    results: list[dict | None] = [None] * len(items)
    valid, positions = [], []
    for index, envelope in enumerate(items):
        problems = _ingest_problems(envelope)
        if problems:
            results[index] = {
                "index": index,
                "id": envelope.get("id") if isinstance(envelope, dict) else None,
                "status": "rejected",
                "errors": [{**p, "field": f"events[{index}].{p['field']}" if p["field"] else f"events[{index}]"} for p in problems],
            }
        else:
            valid.append(envelope)
            positions.append(index)
    for index, outcome in zip(positions, accept_canonical(valid) if valid else []):
        results[index] = {"index": index, **outcome}
    summary = {s: sum(1 for r in results if r["status"] == s) for s in ("accepted", "duplicate", "rejected")}
    status = 400 if summary["rejected"] == len(items) else 202
    response = Response({"summary": summary, "results": results}, status=status, content_type=PROBLEM_JSON if status == 400 else None)
    return _deprecation_headers(response, _types(valid))


def _webhook(request: HttpRequest, system: str):
    throttle = WebhookThrottle(system)
    if not throttle.allow_request(request, None):
        wait = max(1, int(throttle.wait() or 1))
        response = JsonResponse(
            {"type": "about:blank", "title": "Too many requests", "status": 429, "detail": f"Webhook rate exceeded; retry in {wait} s."},
            status=429,
            content_type=PROBLEM_JSON,
        )
        response["Retry-After"] = str(wait)
        return response
    try:
        raw = get_connector(system).verify_webhook(request.body, request.headers)
    except ConnectorError as exc:
        status = 400 if exc.error_class in ("auth", "validation") else 503
        log.warning("%s webhook refused: %s", system, exc.message)
        return JsonResponse(
            {"type": "about:blank", "title": "Webhook refused", "status": status, "detail": exc.message}, status=status, content_type=PROBLEM_JSON
        )
    results = accept_raw(system, raw, body=request.body)  # the bytes are kept when an event must be dead-lettered as received
    return JsonResponse({"received": len(raw), "accepted": sum(1 for _, pk in results if pk), "duplicates": sum(1 for _, pk in results if not pk)}, status=200)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest):
    """Stripe events, verified with Stripe-Signature (HMAC-SHA256, 300 s tolerance)."""
    return _webhook(request, "stripe")


@csrf_exempt
@require_POST
def salesforce_webhook(request: HttpRequest):
    """Salesforce change/platform events relayed by a Flow or Apex callout
    (X-Q2C-Signature: t=<unix>,v1=<HMAC-SHA256 of "<t>.<body>">, 300 s tolerance)."""
    return _webhook(request, "salesforce")


# --- traces ------------------------------------------------------------------------------------
class StepSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    name = serializers.CharField()
    system = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    idempotency_key = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    error_class = serializers.CharField()
    error_message = serializers.CharField()
    request_summary = serializers.JSONField()
    response_summary = serializers.JSONField()


class FlowSerializer(serializers.ModelSerializer):
    class Meta:
        model = FlowRun
        fields = [
            "id",
            "flow_type",
            "status",
            "correlation_id",
            "deal_id",
            "document_number",
            "account_name",
            "legal_entity",
            "amount",
            "currency",
            "amount_reporting",
            "current_step",
            "parked_reason",
            "created_at",
            "started_at",
            "finished_at",
            "business_started_at",
            "business_completed_at",
            "closed_won_at",
            "activated_at",
            "finalized_at",
            "posted_at",
            "sla_due_at",
            "sla_breached",
            "had_exception",
            "retries",
        ]


class AuditSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["at", "actor_label", "object_type", "object_id", "action", "before", "after", "note"]


@extend_schema(
    summary="Flow runs (traces)",
    parameters=[
        OpenApiParameter("correlation_id", str),
        OpenApiParameter("document_number", str),
        OpenApiParameter("deal_id", str, description="every flow of one deal (the CRM order key)"),
        OpenApiParameter("flow_type", str),
        OpenApiParameter("status", str),
    ],
    responses={200: FlowSerializer(many=True)},
)
@api_view(["GET"])
@permission_classes([has_perm("monitoring.view_traces")])
def flows(request):
    filters = FlowRunApiFilterSet(request.query_params, request=request)
    if not filters.is_valid():  # only correlation_id has a format to get wrong
        return problem(400, "Invalid request", "correlation_id must be a UUID.", [{"field": "correlation_id", "message": "Must be a UUID.", "code": "invalid"}])
    paginator = StandardPagination()
    page = paginator.paginate_queryset(filters.qs.order_by("-created_at", "-id"), request)
    return paginator.get_paginated_response(redact(FlowSerializer(page, many=True).data))


@extend_schema(summary="One flow's whole trace: steps, audit trail, exceptions, related flows", responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([has_perm("monitoring.view_traces")])
def flow_detail(request, pk: int):
    run = get_object_or_404(FlowRun, pk=pk)
    body = FlowSerializer(run).data
    body["steps"] = StepSerializer(run.steps.order_by("seq"), many=True).data
    body["event"] = run.context.get("event")
    body["audit"] = AuditSerializer(AuditEntry.objects.filter(correlation_id=run.correlation_id).order_by("at", "id")[:1000], many=True).data
    body["exceptions"] = list(run.exceptions.values("id", "status", "error_class", "system", "message", "occurrences", "first_seen", "last_seen"))
    body["related"] = list(
        FlowRun.objects.filter(correlation_id=run.correlation_id).exclude(pk=run.pk).values("id", "flow_type", "status", "document_number")[:50]
    )
    return Response(redact(body))  # the stored step payloads stay whole for replay; none of their secrets leave


# --- contracts and replay -------------------------------------------------------------------------
@extend_schema(
    summary="Canonical event contracts (JSON Schema per type and version)",
    description="Every published version: `type` (e.g. order.closed_won.v1), `event` and `version`, its `status` (current, or deprecated "
    "with a `sunset`: the first UTC day it is refused), `accepted` (today), and the event's `current` version. docs/CONTRACTS.md.",
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
@permission_classes([AllowAny])
def schemas(request):
    base = request.build_absolute_uri("/api/v1/schemas/")
    return Response(
        {
            "envelope": f"{base}envelope/",
            "event_types": [
                {
                    "type": c.name,
                    "description": schema(c.name).get("description", ""),
                    "required": schema(c.name).get("required", []),
                    "url": f"{base}{c.name}/",
                    "event": c.family,
                    "version": c.version,
                    "status": c.status,
                    "sunset": c.sunset.isoformat() if c.sunset else None,
                    "accepted": c.accepted,
                    "current": c.current,
                }
                for c in contracts().values()
            ],
        }
    )


@extend_schema(summary="One event contract as JSON Schema", operation_id="schemas_detail", responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([AllowAny])
def schema_detail(request, name: str):
    if name != "envelope" and name not in event_types() or not (SCHEMA_DIR / f"{name}.json").exists():
        raise Http404
    return _deprecation_headers(Response(schema(name), content_type="application/schema+json"), [name])


@extend_schema(summary="Replay a dead-lettered inbound event", request=None, responses={202: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([has_perm("sync.act_on_exception")])
def inbox_replay_view(request, pk: int):
    event = get_object_or_404(InboxEvent, pk=pk)
    if event.status not in (InboxEvent.Status.DEAD, InboxEvent.Status.IGNORED):
        return problem(409, "Not replayable", f"Event {pk} is {event.status}; only dead-lettered or ignored events are replayed.")
    event = inbox_replay(inbox_id=pk, actor=request.user)
    return Response({"id": event.pk, "status": event.status}, status=202)
