"""Exception queue API: the same filters, reads and actions as the pages, the same permissions.

Errors are RFC 7807 problem+json with field detail (q2c_portal.api). Filters that are not
understood are refused (400), never silently widened: a bulk retry acts on exactly the
filtered set.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from monitoring.models import BulkJob
from q2c_portal import redaction
from q2c_portal.api import StandardPagination, django_to_drf, has_perm
from sync.engine.runner import FlowBusy
from sync.models import SyncException

from . import selectors as sel
from . import services
from .filters import ExceptionFilterSet

VIEW = "monitoring.view_exceptions"
ACT = "sync.act_on_exception"

_FILTER_DOCS = {
    "status": "active (open + retrying, default), open, retrying, resolved, ignored or all",
    "error_class": "validation, mapping, auth, rate_limit, timeout, unavailable, conflict, not_found, duplicate, reconciliation, parked, missing",
    "system": "salesforce, netsuite, stripe, hub, api",
    "flow_type": "customer_sync, order_activation, amendment, renewal, cancellation, invoice_posting, payment_status, usage_close, credit_memo",
    "step": "step name, e.g. erp_invoice",
    "assignee": "a username, 'me' or 'none'",
    "cause": "root-cause group key (cause_key)",
    "account": "account name starts with (case-insensitive)",
    "document": "document number, exact",
    "currency": "ISO 4217 code of the document amount",
    "amount_min": "amount ≥ (document currency)",
    "amount_max": "amount ≤ (document currency)",
    "risk_min": "revenue at risk ≥ (reporting currency)",
    "retries": "0 (never retried), 1 (at least once), 3 (3 or more)",
    "age": "1h (<1 hour), 1d (1–24 hours), 7d (1–7 days), old (>7 days) since first seen",
    "q": "free text: message contains, document number or account starts with",
    "sort": "-last_seen (default), first_seen, -first_seen, -amount, amount, -revenue_at_risk, -occurrences",
}
FILTER_PARAMETERS = [OpenApiParameter(name, str, description=doc) for name, doc in _FILTER_DOCS.items()]


def _filters(request, params) -> ExceptionFilterSet:
    unknown = sorted(set(params) - set(ExceptionFilterSet.param_names()) - {"page", "page_size", "dry_run", "expected_total", "format"})
    filters = ExceptionFilterSet(params, request=request)
    errors = dict(filters.invalid)
    for name in unknown:
        errors[name] = "Unknown filter."
    if errors:
        raise ValidationError(errors)
    return filters


class AlreadyUnderWay(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A retry of this flow is already under way."
    default_code = "already_under_way"


def _call(fn, **kwargs):
    try:
        return fn(**kwargs)
    except FlowBusy as exc:  # before ValidationError, which it is: the flow is busy, not the request wrong
        raise AlreadyUnderWay(exc.reason) from None
    except DjangoValidationError as exc:
        raise django_to_drf(exc) from None


# --- representations ---------------------------------------------------------------------------------
class ExceptionSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    step = serializers.CharField(source="step_name")
    account = serializers.CharField(source="account_name")
    document = serializers.CharField(source="document_number")
    amount = serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True, allow_null=True)
    revenue_at_risk = serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True, allow_null=True)
    reporting_currency = serializers.SerializerMethodField()
    assignee = serializers.SerializerMethodField()
    age_seconds = serializers.SerializerMethodField()
    flow_run = serializers.IntegerField(source="flow_run_id", allow_null=True)
    deal = serializers.SerializerMethodField(help_text="the deal id (CRM order key) of the exception's flow, '' when none")

    class Meta:
        model = SyncException
        fields = [
            "id",
            "url",
            "status",
            "flow_type",
            "step",
            "system",
            "error_class",
            "message",
            "field",
            "account",
            "document",
            "amount",
            "currency",
            "revenue_at_risk",
            "reporting_currency",
            "assignee",
            "first_seen",
            "last_seen",
            "age_seconds",
            "occurrences",
            "retries",
            "cause_key",
            "fingerprint",
            "correlation_id",
            "flow_run",
            "deal",
        ]

    def get_deal(self, obj) -> str:
        if hasattr(obj, "deal_ref"):  # the list's queryset carries it (one query for the page)
            return obj.deal_ref or ""
        return obj.flow_run.deal_id if obj.flow_run_id else ""

    def to_representation(self, instance):
        # messages, payloads, responses, history: nothing secret leaves the server (q2c_portal/redaction.py)
        return redaction.redact(super().to_representation(instance))

    def get_url(self, obj) -> str:
        request = self.context.get("request")
        path = reverse("api-exception-detail", args=[obj.pk])
        return request.build_absolute_uri(path) if request else path

    def get_reporting_currency(self, obj) -> str:
        return settings.REPORTING_CURRENCY

    def get_assignee(self, obj) -> str | None:
        return obj.assignee.username if obj.assignee_id else None

    def get_age_seconds(self, obj) -> int:
        return int((timezone.now() - obj.first_seen).total_seconds())


class ExceptionDetailSerializer(ExceptionSerializer):
    payload = serializers.SerializerMethodField()
    response = serializers.SerializerMethodField()
    story = serializers.SerializerMethodField()

    class Meta(ExceptionSerializer.Meta):
        fields = [*ExceptionSerializer.Meta.fields, "resolution_note", "resolved_at", "payload", "response", "story"]

    def get_payload(self, obj) -> dict:
        return redaction.redact(obj.payload or {})

    def get_response(self, obj) -> dict:
        return redaction.redact(obj.response or {})

    def get_story(self, obj) -> dict:
        story = sel.exception_story(obj)
        preview = story["preview"]
        return {
            "suggestion": story["suggestion"],
            "retry": {
                "can_retry": preview["can_retry"],
                "reason": preview["reason"],
                "idempotency_key": preview["idempotency_key"],
                "side_effects": [{**e, "finished_at": e["finished_at"].isoformat() if e["finished_at"] else None} for e in preview["side_effects"]],
            },
            "steps": [
                {
                    "seq": s.seq,
                    "name": s.name,
                    "system": s.system,
                    "status": s.status,
                    "attempts": s.attempts,
                    "idempotency_key": s.idempotency_key,
                    "started_at": s.started_at,
                    "finished_at": s.finished_at,
                    "error_class": s.error_class,
                    "error_message": s.error_message,
                    "this_exception": s.pk == obj.step_id,
                }
                for s in story["steps"]
            ],
            "history": [
                {
                    "at": a.at,
                    "object_type": a.object_type,
                    "action": a.action,
                    "label": a.label,
                    "actor": a.actor_label,
                    "note": a.note,
                    "before": redaction.redact(a.before),
                    "after": redaction.redact(a.after),
                }
                for a in story["audit"]
            ],
            "comments": [{"author": c.author.username if c.author_id else None, "text": c.text, "at": c.created_at} for c in story["comments"]],
            "customer_match": _review_json(story["review"]),
            "payload_edits": [
                {
                    "id": e.pk,
                    "status": e.status,
                    "requires_approval": e.requires_approval,
                    "reason": e.reason,
                    "requested_by": e.requested_by.username if e.requested_by_id else None,
                    "requested_at": e.requested_at,
                    "decided_by": e.decided_by.username if e.decided_by_id else None,
                    "decided_at": e.decided_at,
                }
                for e in story["payload_edits"]
            ],
            "same_cause_open": story["cause_count"],
        }


class BulkJobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    processed = serializers.IntegerField(read_only=True)
    percent = serializers.IntegerField(read_only=True)
    finished = serializers.BooleanField(read_only=True)
    filter = serializers.CharField(source="query")
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = BulkJob
        fields = [
            "id",
            "url",
            "kind",
            "status",
            "total",
            "processed",
            "retried",
            "skipped",
            "failed",
            "percent",
            "finished",
            "filter",
            "description",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "last_error",
        ]

    def get_url(self, obj) -> str:
        request = self.context.get("request")
        path = reverse("api-exception-bulk-job", args=[obj.pk])
        return request.build_absolute_uri(path) if request else path

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.username if obj.created_by_id else None


# --- reads ------------------------------------------------------------------------------------------------
@extend_schema(
    summary="The exception queue, filtered",
    parameters=[*FILTER_PARAMETERS, OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
    responses={200: ExceptionSerializer(many=True), 400: OpenApiResponse(description="problem+json: a filter is not understood")},
)
@api_view(["GET"])
@permission_classes([has_perm(VIEW)])
def exception_list(request):
    filters = _filters(request, request.query_params)
    paginator = StandardPagination()
    page = paginator.paginate_queryset(filters.qs, request)
    return paginator.get_paginated_response(ExceptionSerializer(page, many=True, context={"request": request}).data)


@extend_schema(summary="One exception with its business story, payload (secrets redacted), trace and history", responses={200: ExceptionDetailSerializer})
@api_view(["GET"])
@permission_classes([has_perm(VIEW)])
def exception_detail(request, pk: int):
    exc = get_object_or_404(SyncException.objects.select_related("flow_run", "step", "assignee", "inbox_event"), pk=pk)
    return Response(ExceptionDetailSerializer(exc, context={"request": request}).data)


@extend_schema(summary="Root-cause groups: the same cause across documents", parameters=FILTER_PARAMETERS, responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([has_perm(VIEW)])
def exception_groups(request):
    filters = _filters(request, request.query_params)
    paginator = StandardPagination()
    page = sel.with_sample_messages(paginator.paginate_queryset(sel.cause_groups(filters=filters), request))
    rows = [
        {
            "cause_key": g["cause_key"],
            "message": redaction.redact_text(g["message"]),
            "exceptions": g["count"],
            "documents": g["documents"],
            "occurrences": g["occurrences"],
            "revenue_at_risk": f"{g['at_risk'] or 0:.2f}",
            "reporting_currency": settings.REPORTING_CURRENCY,
            "systems": g["systems"],
            "error_classes": g["error_classes"],
            "flow_types": [f for f in g["flow_types"] if f],
            "first_seen": g["first_seen"],
            "last_seen": g["last_seen"],
            "retryable": g["retryable"],
            "queue": f"{reverse('api-exception-list')}?cause={g['cause_key']}",
        }
        for g in page
    ]
    return paginator.get_paginated_response(rows)


def _review_json(review: dict | None) -> dict | None:
    """The customer match behind a duplicate/conflict exception: both records, evidence, score, merges."""
    if review is None:
        return None
    m = review["match"]

    def customer(c, refs):
        if c is None:
            return None
        return {"id": str(c.pk), "name": c.name, "merged_into": str(c.merged_into_id) if c.merged_into_id else None, "references": [list(r) for r in refs]}

    return {
        "id": m.pk,
        "outcome": m.outcome,
        "error_class": m.error_class,
        "score": str(m.score) if m.score is not None else None,
        "decision": m.decision,
        "decided_by": m.decided_by.username if m.decided_by_id else None,
        "decided_at": m.decided_at,
        "record": {"system": m.system, "object_type": m.object_type, "external_id": m.external_id, **m.record},
        "existing_customer": customer(review["candidate"], review["candidate_refs"]),
        "arriving_customer": customer(review["record"], review["record_refs"]),
        "fields": review["rows"],
        "evidence": m.evidence,
        "reasons": m.reasons,
        "candidates": m.candidates,
        "merges": [
            {
                "id": mg.pk,
                "survivor": str(mg.survivor_id),
                "merged": str(mg.merged_id),
                "moved": {k: len(v) for k, v in (mg.moved or {}).items()},
                "merged_at": mg.merged_at,
                "unmerged_at": mg.unmerged_at,
            }
            for mg in review["merges"]
        ],
    }


# --- actions ---------------------------------------------------------------------------------------------
class NoteIn(serializers.Serializer):
    note = serializers.CharField(max_length=5000, help_text="how it was resolved")


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=5000, help_text="why it can be ignored")


class AssignIn(serializers.Serializer):
    assignee = serializers.CharField(max_length=150, allow_blank=True, help_text="username of an active user whose role may act; '' unassigns")


class CommentIn(serializers.Serializer):
    text = serializers.CharField(max_length=5000)


class CancelIn(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)
    confirm = serializers.BooleanField(help_text="must be true: compensation undoes the flow's side effects")


class EditPayloadIn(serializers.Serializer):
    payload = serializers.JSONField(help_text="the step's edited input (a JSON object); ••• keeps an original secret value")
    reason = serializers.CharField(max_length=2000)


def _action(request, pk: int, body_serializer, run) -> Response:
    get_object_or_404(SyncException, pk=pk)
    data = {}
    if body_serializer is not None:
        body = body_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
    result = _call(run, **data)
    exc = SyncException.objects.select_related("flow_run", "step", "assignee", "inbox_event").get(pk=pk)
    out = ExceptionDetailSerializer(exc, context={"request": request}).data
    if result is not None and hasattr(result, "requires_approval"):
        out = {"payload_edit": {"id": result.pk, "status": result.status, "requires_approval": result.requires_approval}, "exception": out}
    return Response(out)


_ACTION_RESPONSES = {
    200: ExceptionDetailSerializer,
    400: OpenApiResponse(description="problem+json with field detail"),
    403: OpenApiResponse(description="your role may not act"),
    409: OpenApiResponse(description="problem+json: the flow is already being worked on (a retry or cancel under way)"),
}


@extend_schema(summary="Retry the failed step with its idempotency key", request=None, responses=_ACTION_RESPONSES)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_retry(request, pk: int):
    return _action(request, pk, None, lambda: services.exception_retry(exception_id=pk, user=request.user))


@extend_schema(summary="Resolve with a note", request=NoteIn, responses=_ACTION_RESPONSES)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_resolve(request, pk: int):
    return _action(request, pk, NoteIn, lambda note: services.exception_resolve(exception_id=pk, user=request.user, note=note))


@extend_schema(summary="Ignore with a reason", request=ReasonIn, responses=_ACTION_RESPONSES)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_ignore(request, pk: int):
    return _action(request, pk, ReasonIn, lambda reason: services.exception_ignore(exception_id=pk, user=request.user, reason=reason))


@extend_schema(summary="Assign to a user (or '' to unassign)", request=AssignIn, responses=_ACTION_RESPONSES)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_assign(request, pk: int):
    return _action(request, pk, AssignIn, lambda assignee: services.exception_assign(exception_id=pk, user=request.user, assignee_username=assignee))


@extend_schema(summary="Add a comment", request=CommentIn, responses=_ACTION_RESPONSES)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_comment(request, pk: int):
    return _action(request, pk, CommentIn, lambda text: services.exception_comment(exception_id=pk, user=request.user, text=text))


@extend_schema(summary="Replay the dead-lettered inbound event", request=None, responses=_ACTION_RESPONSES)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_replay(request, pk: int):
    return _action(request, pk, None, lambda: services.exception_replay(exception_id=pk, user=request.user))


@extend_schema(summary="Cancel the flow (compensation runs on a worker)", request=CancelIn, responses=_ACTION_RESPONSES)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_cancel(request, pk: int):
    return _action(
        request, pk, CancelIn, lambda reason, confirm: services.exception_cancel_flow(exception_id=pk, user=request.user, reason=reason, confirmed=confirm)
    )


@extend_schema(
    summary="Edit the step's payload, then retry (financial documents wait for a second user's approval)",
    request=EditPayloadIn,
    responses={200: OpenApiTypes.OBJECT, 400: OpenApiResponse(description="problem+json with field detail")},
)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_edit_payload(request, pk: int):
    return _action(
        request, pk, EditPayloadIn, lambda payload, reason: services.exception_edit_payload(exception_id=pk, user=request.user, payload=payload, reason=reason)
    )


# --- customer match decisions ---------------------------------------------------------------------------------
DECIDE = services.DECIDE_CUSTOMER_MATCH


class CustomerDecisionIn(serializers.Serializer):
    survivor = serializers.ChoiceField(choices=["candidate", "record"], default="candidate", help_text="which customer survives a merge")
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class UnmergeIn(serializers.Serializer):
    note = serializers.CharField(max_length=2000, help_text="why the merge was wrong")


@extend_schema(
    summary="Decide a customer match: merge (the survivor's values win), owner (merge taking each field from its owning system) or separate",
    request=CustomerDecisionIn,
    responses=_ACTION_RESPONSES,
)
@api_view(["POST"])
@permission_classes([has_perm(DECIDE)])
def exception_customer_decide(request, pk: int, decision: str):
    if decision not in services.CUSTOMER_DECISIONS:
        raise ValidationError({"decision": "Decide merge, owner or separate."})
    return _action(
        request,
        pk,
        CustomerDecisionIn,
        lambda survivor, note: services.customer_match_decide(exception_id=pk, user=request.user, decision=decision, survivor=survivor, note=note),
    )


@extend_schema(
    summary="Undo the merge of a customer match: two customers again, each with its references and documents", request=UnmergeIn, responses=_ACTION_RESPONSES
)
@api_view(["POST"])
@permission_classes([has_perm(DECIDE)])
def exception_customer_unmerge(request, pk: int):
    return _action(request, pk, UnmergeIn, lambda note: services.customer_unmerge(exception_id=pk, user=request.user, note=note))


# --- bulk retry ----------------------------------------------------------------------------------------------
class BulkRetryIn(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False, help_text="true: count and list what would be retried, change nothing")
    expected_total = serializers.IntegerField(
        required=False, min_value=0, help_text="the matched count from the dry run; refused (400) if the filter now matches a different number"
    )


@extend_schema(
    summary="Retry every exception the filter matches (a background job)",
    description="Filters as query parameters (or keys of the JSON body). With dry_run=true: the exact matched count, how many will be retried, "
    "their idempotency keys (up to 1,000) and the side effects already done per system. Otherwise 202 with the job and a URL to poll.",
    parameters=[*FILTER_PARAMETERS, OpenApiParameter("dry_run", bool)],
    request=BulkRetryIn,
    responses={
        200: inline_serializer(
            "BulkRetryDryRun",
            {
                "dry_run": serializers.BooleanField(),
                "matched": serializers.IntegerField(),
                "retryable": serializers.IntegerField(),
                "skipped": serializers.IntegerField(),
                "idempotency_keys": serializers.ListField(child=serializers.CharField()),
                "keys_truncated": serializers.BooleanField(),
                "by_system": serializers.DictField(child=serializers.IntegerField()),
                "side_effects": serializers.ListField(child=serializers.DictField()),
                "filter": serializers.CharField(),
                "description": serializers.CharField(),
            },
        ),
        202: BulkJobSerializer,
        400: OpenApiResponse(description="problem+json: unknown filter, nothing matches, too many, or expected_total differs"),
    },
)
@api_view(["POST"])
@permission_classes([has_perm(ACT)])
def exception_bulk_retry(request):
    params = QueryDict(mutable=True)
    params.update(request.query_params)
    body = request.data if isinstance(request.data, dict) else {}
    for name in ExceptionFilterSet.param_names():
        if name in body:
            params[name] = str(body[name])
    options = BulkRetryIn(
        data={
            **{k: v for k, v in request.query_params.items() if k in ("dry_run", "expected_total")},
            **{k: v for k, v in body.items() if k in ("dry_run", "expected_total")},
        }
    )
    options.is_valid(raise_exception=True)
    filters = _filters(request, params)
    if options.validated_data["dry_run"]:
        preview = sel.bulk_retry_preview(filters=filters)
        return Response(
            {
                "dry_run": True,
                "matched": preview["matched"],
                "retryable": preview["retryable"],
                "skipped": preview["skipped"],
                "idempotency_keys": preview["idempotency_keys"],
                "keys_truncated": preview["keys_truncated"],
                "by_system": preview["by_system"],
                "side_effects": preview["side_effects"],
                "filter": preview["query"],
                "description": preview["description"],
            }
        )
    job = _call(services.bulk_retry_start, user=request.user, filters=filters, expected_total=options.validated_data.get("expected_total"))
    data = BulkJobSerializer(job, context={"request": request}).data
    return Response({**data, "job_id": job.pk, "status_url": data["url"]}, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


@extend_schema(summary="A bulk job's progress", responses={200: BulkJobSerializer})
@api_view(["GET"])
@permission_classes([has_perm(VIEW)])
def exception_bulk_job(request, job_id: int):
    job = get_object_or_404(BulkJob.objects.select_related("created_by"), pk=job_id)
    return Response(BulkJobSerializer(job, context={"request": request}).data)
