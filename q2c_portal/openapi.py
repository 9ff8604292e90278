"""The OpenAPI schema says what the API does (a drf-spectacular postprocessing hook, issue 13).

On top of what the views declare:

- lists answer pages (StandardPagination): `{count, next, previous, results}`, not bare arrays;
- every error is RFC 7807 problem+json (`Problem`): 400, 401, 403, 404, 405, 413, 415, 429 where
  an operation can give them, and `default` (5xx) everywhere;
- the vendor webhooks, which are plain Django views (signature-verified, no DRF
  authentication), are described too.

tests/test_openapi_fuzz.py runs schemathesis against the result.
"""

from __future__ import annotations

import copy

PROBLEM_JSON = "application/problem+json"
PROBLEM = {
    "type": "object",
    "description": "RFC 7807 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string", "nullable": True}, "message": {"type": "string"}, "code": {"type": "string"}},
                "required": ["message"],
            },
        },
    },
    "required": ["title", "status"],
}
# the batch endpoint's 400 is its per-item report, served as problem+json
BATCH_REPORT = {
    "type": "object",
    "properties": {"summary": {"type": "object"}, "results": {"type": "array", "items": {"type": "object"}}},
}
PAGINATED_OBJECTS = {"exceptions_groups_retrieve"}  # paginated lists whose items the view declares as plain objects
TITLES = {
    400: "The request is not understood: problem+json naming each bad field.",
    401: "Authentication required (Authorization: Token <key>, or a session).",
    403: "The credential or role may not do this (for events: outside the token's scope).",
    404: "No such object.",
    405: "Method not allowed.",
    413: "The body is larger than the server accepts.",
    415: "Unsupported media type.",
    409: "Conflict with the object's current state.",
    429: "Rate limit exceeded; Retry-After says when to try again.",
    "default": "Unexpected error (5xx), as problem+json.",
}


def _problem_response(code) -> dict:
    return {"description": TITLES[code], "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _not_problem(response: dict) -> bool:
    """Declared without a body or as plain JSON (drf-spectacular's default for an error)."""
    return "content" not in response or set(response["content"]) == {"application/json"}


def _page(items: dict) -> dict:
    return {
        "type": "object",
        "required": ["count", "results"],
        "properties": {
            "count": {"type": "integer"},
            "next": {"type": "string", "nullable": True, "format": "uri"},
            "previous": {"type": "string", "nullable": True, "format": "uri"},
            "results": {"type": "array", "items": items},
        },
    }


def _webhook(summary: str, header: str, header_doc: str) -> dict:
    return {
        "post": {
            "operationId": f"webhooks_{header.split('-')[0].lower()}_create",
            "summary": summary,
            "tags": ["webhooks"],
            "security": [],
            "parameters": [{"in": "header", "name": header, "required": True, "schema": {"type": "string"}, "description": header_doc}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": {
                    "description": "Verified and stored (or a duplicate of a stored event).",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["received", "accepted", "duplicates"],
                                "properties": {"received": {"type": "integer"}, "accepted": {"type": "integer"}, "duplicates": {"type": "integer"}},
                            }
                        }
                    },
                },
                "400": _problem_response(400) | {"description": "Signature missing, wrong or expired, or the body is not the vendor's event."},
                "405": _problem_response(405),
                "413": _problem_response(413),
                "429": _problem_response(429),
                "503": _problem_response("default") | {"description": "The connector is not configured or unavailable; the vendor retries."},
                "default": _problem_response("default"),
            },
        }
    }


WEBHOOKS = {
    "/api/v1/webhooks/stripe/": _webhook(
        "Stripe events (webhook)", "Stripe-Signature", "t=<unix>,v1=<hex HMAC-SHA256 of '<t>.<body>'> (300 s tolerance), as Stripe signs"
    ),
    "/api/v1/webhooks/salesforce/": _webhook(
        "Salesforce change/platform events from the relay (webhook)",
        "X-Q2C-Signature",
        "t=<unix>,v1=<hex HMAC-SHA256 of '<t>.<body>'> (300 s tolerance)",
    ),
}


def postprocess(result: dict, generator, request, public) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM
    paths = result.setdefault("paths", {})
    for path, item in WEBHOOKS.items():
        paths.setdefault(path, copy.deepcopy(item))
    for path, item in paths.items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            ok = responses.get("200", {}).get("content", {}).get("application/json", {}).get("schema")
            if method == "get" and ok is not None and (ok.get("type") == "array" or operation.get("operationId") in PAGINATED_OBJECTS):
                items = ok.get("items", {}) if ok.get("type") == "array" else {"type": "object", "additionalProperties": {}}
                responses["200"]["content"]["application/json"]["schema"] = _page(items)
                operation.setdefault("parameters", []).extend(
                    p
                    for p in (
                        {"in": "query", "name": "page", "schema": {"type": "integer", "minimum": 1}, "description": "page number"},
                        {"in": "query", "name": "page_size", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    )
                    if p["name"] not in {q.get("name") for q in operation.get("parameters", [])}
                )
            codes = [400, 405, 429, "default"]
            if operation.get("security") != [] and operation.get("security") != [{}]:
                codes += [401, 403]
            if "{" in path or operation.get("parameters"):
                codes.append(404)  # an unknown id; a page past the last
            if method != "get":
                codes += [413, 415]
            for code in codes:
                responses.setdefault(str(code), _problem_response(code))
            for key, current in list(responses.items()):  # every error a view declares (409 …) is problem+json too
                if key.isdigit() and int(key) >= 400 and _not_problem(current):
                    responses[key] = _problem_response("default") | {"description": current.get("description") or TITLES.get(int(key), "Error")}
    batch = paths.get("/api/v1/events/batch/", {}).get("post")
    if batch:
        batch["responses"]["400"] = {
            "description": "Every item was rejected: the per-item report (or a problem when the body is not a batch).",
            "content": {PROBLEM_JSON: {"schema": {"anyOf": [{"$ref": "#/components/schemas/Problem"}, BATCH_REPORT]}}},
        }
    return result
