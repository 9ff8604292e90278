"""Reconciliation API: runs (start, list, detail with progress, breaks, CSV), rules (read,
save a new version) and the dry run of a changed rule set. Errors are problem+json."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from q2c_portal.api import StandardPagination, has_perm, problem
from sync.models import ReconciliationBreak, ReconciliationRun

from .dry_run import NoSnapshot, dry_run
from .rules import RuleError, active_rule_set, save_rule_set
from .runs import AlreadyRunning, request_run

VIEW = "monitoring.view_reconciliation"
RUN = "sync.act_on_exception"  # whoever may work the exception queue may start a run
MANAGE_RULES = "sync.manage_reconciliation_rules"


class RunSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    match_rate = serializers.DecimalField(max_digits=5, decimal_places=1, read_only=True, allow_null=True)
    rule_set_version = serializers.IntegerField(source="rule_set.version", read_only=True, allow_null=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True)

    class Meta:
        model = ReconciliationRun
        fields = [
            "id",
            "status",
            "trigger",
            "requested_by",
            "rule_set_version",
            "phase",
            "progress",
            "started_at",
            "began_at",
            "finished_at",
            "duration_seconds",
            "records",
            "customers_checked",
            "documents_checked",
            "documents_matched",
            "documents_pending",
            "match_rate",
            "suggested",
            "breaks_found",
            "breaks_resolved",
            "breaks_by_type",
            "breaks_value",
            "error",
        ]


class BreakSerializer(serializers.ModelSerializer):
    age_days = serializers.SerializerMethodField()

    class Meta:
        model = ReconciliationBreak
        fields = [
            "id",
            "key",
            "break_type",
            "document_type",
            "document_number",
            "deal_id",
            "account_name",
            "system",
            "rule",
            "currency",
            "crm_value",
            "billing_value",
            "erp_value",
            "sides",
            "difference",
            "difference_reporting",
            "value_reporting",
            "document_date",
            "first_seen",
            "age_days",
            "needs_review",
            "suggestion",
            "exception",
        ]

    def get_age_days(self, obj) -> int | None:
        return break_age_days(obj)


def break_age_days(obj: ReconciliationBreak) -> int | None:
    """Days since the document's date (or since a run first found the break), at the run."""
    at = obj.run.began_at or obj.run.started_at
    if obj.document_date:
        return max(0, (at.date() - obj.document_date).days)
    if obj.first_seen:
        return max(0, (at - obj.first_seen).days)
    return None


def filtered_breaks(run: ReconciliationRun, params) -> tuple:
    qs = run.breaks.select_related("run").order_by("-value_reporting", "id")
    errors = []
    kind = params.get("break_type")
    if kind:
        if kind not in ReconciliationBreak.BreakType.values:
            errors.append({"field": "break_type", "message": f"one of {', '.join(ReconciliationBreak.BreakType.values)}", "code": "invalid_choice"})
        qs = qs.filter(break_type=kind)
    for name in ("document_type", "system", "deal_id"):
        if params.get(name):
            qs = qs.filter(**{name: params[name]})
    if params.get("q"):
        qs = qs.filter(document_number__icontains=params["q"]) | qs.filter(account_name__icontains=params["q"])
    if params.get("review") in ("1", "true"):
        qs = qs.filter(needs_review=True)
    return qs, errors


@extend_schema(
    methods=["POST"],
    summary="Start a reconciliation run",
    description="Queues a run on the `recon` queue (202). 409 while another run is queued or running (its id is in `run`).",
    request=None,
    responses={202: RunSerializer, 409: OpenApiTypes.OBJECT},
)
@extend_schema(methods=["GET"], summary="Reconciliation runs, newest first", responses={200: RunSerializer(many=True)})
@api_view(["GET", "POST"])
def runs(request):
    if request.method == "POST":
        if not has_perm(RUN)().has_permission(request, None):
            return problem(403, "Forbidden", f"Your role lacks the permission {RUN}.")
        try:
            run = request_run(trigger=ReconciliationRun.Trigger.API, user=request.user)
        except AlreadyRunning as exc:
            return problem(409, "A run is in progress", str(exc), run=RunSerializer(exc.run).data)
        return Response(RunSerializer(run).data, status=202)
    if not has_perm(VIEW)().has_permission(request, None):
        return problem(403, "Forbidden", f"Your role lacks the permission {VIEW}.")
    paginator = StandardPagination()
    page = paginator.paginate_queryset(ReconciliationRun.objects.select_related("rule_set", "requested_by").order_by("-started_at", "-id"), request)
    return paginator.get_paginated_response(RunSerializer(page, many=True).data)


@extend_schema(summary="One run: status, progress, counts per system and break type", responses={200: RunSerializer})
@api_view(["GET"])
@permission_classes([has_perm(VIEW)])
def run_detail(request, pk: int):
    return Response(RunSerializer(get_object_or_404(ReconciliationRun.objects.select_related("rule_set", "requested_by"), pk=pk)).data)


@extend_schema(
    summary="A run's breaks, largest value first",
    parameters=[
        OpenApiParameter("break_type", str),
        OpenApiParameter("document_type", str),
        OpenApiParameter("system", str),
        OpenApiParameter("deal_id", str),
        OpenApiParameter("q", str, description="document number or account contains"),
        OpenApiParameter("review", bool, description="only breaks with a suggested match to review"),
    ],
    responses={200: BreakSerializer(many=True)},
)
@api_view(["GET"])
@permission_classes([has_perm(VIEW)])
def run_breaks(request, pk: int):
    run = get_object_or_404(ReconciliationRun, pk=pk)
    qs, errors = filtered_breaks(run, request.query_params)
    if errors:
        return problem(400, "Invalid request", errors[0]["message"], errors)
    paginator = StandardPagination()
    page = paginator.paginate_queryset(qs, request)
    return paginator.get_paginated_response(BreakSerializer(page, many=True).data)


class RulesBody(serializers.Serializer):
    rules = serializers.ListField(child=serializers.DictField())
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


@extend_schema(methods=["GET"], summary="The active rule set (ordered, named, versioned)", responses={200: OpenApiTypes.OBJECT})
@extend_schema(methods=["PUT"], summary="Save a changed rule set as a new version (audited)", request=RulesBody, responses={200: OpenApiTypes.OBJECT})
@api_view(["GET", "PUT"])
def rules(request):
    if request.method == "PUT":
        if not has_perm(MANAGE_RULES)().has_permission(request, None):
            return problem(403, "Forbidden", f"Your role lacks the permission {MANAGE_RULES}.")
        body = request.data if isinstance(request.data, dict) else {}
        try:
            saved = save_rule_set(body.get("rules"), user=request.user, note=str(body.get("note") or ""))
        except RuleError as exc:
            return problem(400, "Invalid rules", str(exc), [{**e, "code": "invalid"} for e in exc.errors])
        return Response(_rule_set(saved))
    if not has_perm(VIEW)().has_permission(request, None):
        return problem(403, "Forbidden", f"Your role lacks the permission {VIEW}.")
    return Response(_rule_set(active_rule_set()))


def _rule_set(rule_set) -> dict:
    return {"name": rule_set.name, "version": rule_set.version, "rules": rule_set.rules, "note": rule_set.note, "created_at": rule_set.created_at}


@extend_schema(
    summary="Dry run: what a changed rule set would find and absorb",
    description="Compares the rules against the latest successful run's snapshot and that run's breaks. Changes nothing.",
    request=RulesBody,
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["POST"])
@permission_classes([has_perm(VIEW)])
def rules_dry_run(request):
    body = request.data if isinstance(request.data, dict) else {}
    try:
        return Response(dry_run(body.get("rules")))
    except RuleError as exc:
        return problem(400, "Invalid rules", str(exc), [{**e, "code": "invalid"} for e in exc.errors])
    except NoSnapshot as exc:
        return problem(409, "Nothing to compare against", str(exc))
