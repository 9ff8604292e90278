"""Shared API plumbing: RFC 7807 problem+json errors and pagination."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_JSON = "application/problem+json"


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
        400: "Invalid request", 401: "Authentication required", 403: "Permission denied",
        404: "Not found", 405: "Method not allowed", 415: "Unsupported media type", 429: "Too many requests",
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
