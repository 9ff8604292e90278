"""Business Central's error body: {"error": {"code": "…", "message": "…  CorrelationId:  <guid>."}}."""

from __future__ import annotations

import uuid

from django.http import HttpResponse

from sync.connectors.netsuite import wire  # exact-decimal JSON, shared with the connectors

# the shared fault kit's codes in BC's words (outage 503, error rate 500, rate limit 429)
KIT_CODES = {
    "SERVICE_UNAVAILABLE": "Internal_TenantUnavailable",
    "UNKNOWN_EXCEPTION": "Internal_ServerError",
    "REQUEST_LIMIT_EXCEEDED": "Application_TooManyRequests",  # [U] BC's code for a 429 is undocumented
}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> HttpResponse:
    body = {"error": {"code": code, "message": f"{message}  CorrelationId:  {uuid.uuid4()}."}}
    response = HttpResponse(wire.dumps(body), status=status, content_type="application/json; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def kit_error(status: int, code: str, message: str, field_name: str) -> HttpResponse:
    """Error builder for the shared fault kit."""
    return error_response(status, KIT_CODES.get(code, code), message)


class BCError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> HttpResponse:
        return error_response(self.status, self.code, self.message, self.headers)
