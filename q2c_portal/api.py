"""Shared API plumbing: RFC 7807 problem+json errors, pagination, and permissions."""

from __future__ import annotations

import time

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_JSON = "application/problem+json"


PERM_CACHE_SECONDS = 30
_granted: dict[tuple[int, str], float] = {}  # (user id, perm) → monotonic expiry, this process only


def has_perm(perm: str) -> type[BasePermission]:
    """DRF permission for one Django permission. A grant is remembered for 30 s per process:
    an integration posting events one by one would otherwise pay two permission queries per
    event (a third of the request). Revoking a role therefore takes effect within 30 s;
    deactivating the user or deleting the token takes effect at once (authentication runs
    on every request)."""

    class HasPerm(BasePermission):
        message = f"Your role lacks the permission {perm}."

        def has_permission(self, request, view):
            user = request.user
            if not (user and user.is_authenticated and user.is_active):
                return False
            key, now = (user.pk, perm), time.monotonic()
            if _granted.get(key, 0) > now:
                return True
            if not user.has_perm(perm):
                _granted.pop(key, None)
                return False
            if len(_granted) > 10_000:
                _granted.clear()
            _granted[key] = now + PERM_CACHE_SECONDS
            return True

    return HasPerm


def django_to_drf(exc: DjangoValidationError) -> exceptions.ValidationError:
    """A service's Django ValidationError as DRF's, so it answers 400 problem+json with field detail."""
    return exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def _flatten(detail, prefix: str = "") -> list[dict]:
    """DRF's nested error detail → [{field, message, code}], field as a dotted path."""
    errors: list[dict] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = key if not prefix else (prefix if key == "non_field_errors" else f"{prefix}.{key}")
            if key == "non_field_errors" and not prefix:
                path = ""
            errors.extend(_flatten(value, path))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                errors.extend(_flatten(value, f"{prefix}[{index}]" if prefix else f"[{index}]"))
            else:
                errors.extend(_flatten(value, prefix))
    else:
        errors.append({"field": prefix or None, "message": str(detail), "code": getattr(detail, "code", "invalid")})
    return errors


def problem(status_code: int, title: str, detail: str = "", errors: list[dict] | None = None, **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status_code}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    return Response(body, status=status_code, content_type=PROBLEM_JSON)


def problem_exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    title = {
        400: "Invalid request",
        401: "Authentication required",
        403: "Permission denied",
        404: "Not found",
        405: "Method not allowed",
        409: "Conflict",
        415: "Unsupported media type",
        429: "Too many requests",
    }.get(response.status_code, "Error")
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors[:5])
        out = problem(status.HTTP_400_BAD_REQUEST, title, detail, errors)
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else str(response.data)
        out = problem(response.status_code, title, str(detail))
    for header in ("Retry-After", "WWW-Authenticate", "Allow"):
        if header in response:
            out[header] = response[header]
    return out
