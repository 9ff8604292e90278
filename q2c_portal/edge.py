"""The edge: input refused before any view can trip over it (issue 13, "input that cannot crash").

- a NUL character anywhere in the query string (name or value) → 400: PostgreSQL text cannot
  hold one, and no filter, sort or search means anything with it;
- a body over DATA_UPLOAD_MAX_MEMORY_SIZE → 413 (Django's own answer is an HTML 400);
- a JSON body nested deeper than MAX_JSON_DEPTH → 400, found by an iterative scan of the raw
  bytes, so `json.loads` never recurses 10,000 levels;
- a JSON body to the API (not a vendor webhook) holding a NUL character → 400. A *signed vendor
  webhook* with one is not refused here: the inbox keeps it and dead-letters it with the reason
  (sync/engine/inbox.py), so the vendor's event is never lost.

API paths get RFC 7807 problem+json, pages a short readable page; and any of Django's own HTML
error pages on an API path (an unknown URL's 404, a CSRF 403, a 500) is turned into problem+json.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape

PROBLEM_JSON = "application/problem+json"
MAX_JSON_DEPTH = 64
API_PREFIX = "/api/"
WEBHOOK_PREFIX = "/api/v1/webhooks/"

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string (unrolled: linear, no backtracking blow-up)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """How deeply the arrays/objects of a JSON text nest, without parsing it (strings skipped)."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def holds_nul(value) -> bool:
    """Whether any string (or object key) in parsed JSON contains U+0000; iterative."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def refuse(request, status: int, title: str, detail: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"type": "about:blank", "title": title, "status": status, "detail": detail}, status=status, content_type=PROBLEM_JSON)
    page = f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title><h1>{escape(title)}</h1><p>{escape(detail)}</p><p><a href=/>Back to the overview</a></p></html>"
    return HttpResponse(page, status=status, content_type="text/html; charset=utf-8")


def as_problem(response: HttpResponse) -> HttpResponse:
    status = response.status_code
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    problem = JsonResponse({"type": "about:blank", "title": title, "status": status}, status=status, content_type=PROBLEM_JSON)
    for header in ("Retry-After", "Allow", "X-Request-ID"):
        if header in response:
            problem[header] = response[header]
    return problem


def _too_big(request) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return refuse(request, 413, "Request body too large", f"The body may hold at most {limit:,} bytes.")


class EdgeInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in k or any("\x00" in v for v in vs) for k, vs in request.GET.lists()):
            return refuse(request, 400, "Invalid request", "The address holds a NUL character (%00); remove it from the filter, sort or search.")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return refuse(request, 400, "Invalid request", "Content-Length is not a number.")
        if limit is not None and length > limit:
            return _too_big(request)
        if length and "json" in request.META.get("CONTENT_TYPE", "").lower():
            refused = self._check_json(request)
            if refused is not None:
                return refused
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX) and response.status_code >= 400 and response.get("Content-Type", "").startswith("text/html"):
            # Django's own error pages (an unknown URL, a CSRF failure, a 500) on the API: problem+json like every other API error
            return as_problem(response)
        return response

    def _check_json(self, request) -> HttpResponse | None:
        try:
            body = request.body
        except RequestDataTooBig:
            return _too_big(request)
        depth = json_depth(body)
        if depth > MAX_JSON_DEPTH:
            return refuse(request, 400, "Invalid request", f"The JSON body nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted.")
        if request.path.startswith(API_PREFIX) and not request.path.startswith(WEBHOOK_PREFIX) and (b"\\u0000" in body or b"\x00" in body):
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return None  # not JSON: the view says so
            if holds_nul(parsed):
                return refuse(request, 400, "Invalid request", "The JSON body holds a NUL character (\\u0000); text may not contain one.")
        return None

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig):  # a body without Content-Length that grew past the limit
            return _too_big(request)
        return None
