"""Monitoring API: KPIs and the exception queue."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from .selectors import kpis
from .views import window_from


def has_perm(perm: str) -> type[BasePermission]:
    class HasPerm(BasePermission):
        message = f"Your role lacks the permission {perm}."

        def has_permission(self, request, view):
            return bool(request.user and request.user.is_authenticated and request.user.has_perm(perm))

    return HasPerm


class KpiQuery(serializers.Serializer):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    entity = serializers.CharField(required=False, allow_blank=True, max_length=32)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, allow_blank=True)

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"end": "end must be after start."})
        return attrs


@extend_schema(
    summary="KPIs for a window",
    description="Order cycle time, amendment failures, invoice sync lag, exceptions, SLA, revenue at risk … "
    "as defined in DESIGN.md. Default window: the last 30 days.",
    parameters=[
        OpenApiParameter("start", OpenApiTypes.DATETIME), OpenApiParameter("end", OpenApiTypes.DATETIME),
        OpenApiParameter("entity", str), OpenApiParameter("currency", str),
    ],
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
@permission_classes([has_perm("monitoring.view_kpis")])
def kpi_view(request):
    query = KpiQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    window = window_from(request)
    if query.validated_data.get("start") and query.validated_data.get("end"):
        window = kpis.Window(query.validated_data["start"], query.validated_data["end"], window.entity, window.currency)
    elif query.validated_data.get("start") or query.validated_data.get("end"):
        raise ValidationError({"start": "Give both start and end, or neither (last 30 days)."})
    return Response(kpis.kpi_summary(window))


def django_to_drf(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
