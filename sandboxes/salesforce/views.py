"""Salesforce sandbox HTTP API: OAuth token endpoint and REST API (vNN.0) on the real paths.

Error bodies are JSON arrays `[{"message","errorCode","fields"}]`; every REST response
carries `Sforce-Limit-Info: api-usage=<used>/<limit>`. Faults from the shared kit apply to
every endpoint (`/__sandbox__/faults`); Salesforce-specific knobs live at
`/__sandbox__/salesforce/org`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509 import load_pem_x509_certificate
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.utils import timezone as dj_timezone
from django.views.decorators.csrf import csrf_exempt

from sandboxes.db import DB
from sandboxes.kit.faults import sandbox_endpoint

from . import schema, simulate, store
from .models import AccessToken, ConnectedApp, OrgState
from .store import Ctx, SFError

SYSTEM = "salesforce"
JWT_AUDIENCES = {"https://login.salesforce.com", "https://test.salesforce.com"}


def sf_error(status: int, code: str, message: str, field: str = "") -> HttpResponse:
    """The kit's error builder, in Salesforce's format."""
    response = JsonResponse([{"message": message, "errorCode": code, "fields": [field] if field else []}], status=status, safe=False)
    if status == 429:  # [U] Salesforce signals the org limit with 403; the kit's 429 keeps its Retry-After
        pass
    return response


def _json(status: int, body) -> HttpResponse:
    if status == 204:
        return HttpResponse(status=204)
    return JsonResponse(body, status=status, safe=False, json_dumps_params={"separators": (",", ":")})


# --- OAuth ----------------------------------------------------------------------------------
def _oauth_error(error: str, description: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description}, status=status)


def connected_app(consumer_key: str) -> ConnectedApp | None:
    app = ConnectedApp.objects.filter(consumer_key=consumer_key).first()
    config = settings.CONNECTORS.get("salesforce", {})
    if app is None and consumer_key and consumer_key == config.get("client_id"):
        app, _ = ConnectedApp.objects.get_or_create(
            consumer_key=consumer_key, defaults={"consumer_secret": config.get("client_secret", ""), "run_as_user_id": schema.INTEGRATION_USER_ID}
        )
    return app


def _users() -> dict[str, str]:
    return {
        settings.CONNECTORS.get("salesforce", {}).get("username", "integration@q2c.example").lower(): schema.INTEGRATION_USER_ID,
        "rep@q2c.example": schema.REP_USER_ID,
    }


def _issue(request: HttpRequest, app: ConnectedApp, user_id: str) -> JsonResponse:
    now = dj_timezone.now()
    token = f"{schema.ORG_ID[:15]}!{secrets.token_urlsafe(72)}"[:112]
    AccessToken.objects.create(
        token=token, consumer_key=app.consumer_key, user_id=user_id, issued_at=now, expires_at=now + timedelta(seconds=OrgState.get().session_seconds)
    )
    instance_url = request.build_absolute_uri("/").rstrip("/")
    identity = f"{instance_url}/id/{schema.ORG_ID}/{user_id}"
    issued_at = str(int(now.timestamp() * 1000))
    signature = base64.b64encode(
        hmac.new((app.consumer_secret or app.consumer_key).encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
    ).decode()
    return JsonResponse(
        {
            "access_token": token,
            "signature": signature,
            "scope": "api",
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
    )


@sandbox_endpoint(SYSTEM, sf_error)
def token(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _oauth_error("invalid_request", "must use HTTP POST", 400)
    grant = request.POST.get("grant_type", "")
    if grant == "client_credentials":
        client_id, client_secret = request.POST.get("client_id", ""), request.POST.get("client_secret", "")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return _oauth_error("invalid_client", "invalid client credentials")
        app = connected_app(client_id)
        if app is None or not app.consumer_secret or not hmac.compare_digest(app.consumer_secret, client_secret):
            return _oauth_error("invalid_client", "invalid client credentials")
        return _issue(request, app, app.run_as_user_id)
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        assertion = request.POST.get("assertion", "")
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        app = connected_app(str(claims.get("iss", "")))
        if app is None:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not app.certificate_pem:
            return _oauth_error("invalid_grant", "invalid assertion: no certificate is registered for this connected app")
        own = request.build_absolute_uri("/").rstrip("/")
        try:
            claims = jwt.decode(
                assertion,
                _public_key(app.certificate_pem),
                algorithms=["RS256"],
                audience=sorted(JWT_AUDIENCES | {own}),
                options={"require": ["iss", "sub", "aud", "exp"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            return _oauth_error("invalid_grant", "expired authorization code")
        except jwt.InvalidAudienceError:
            return _oauth_error("invalid_grant", "audience is invalid")
        except jwt.PyJWTError as exc:
            return _oauth_error("invalid_grant", f"invalid assertion: {exc}")
        user_id = _users().get(str(claims["sub"]).lower())
        if user_id is None:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return _issue(request, app, user_id)
    return _oauth_error("unsupported_grant_type", "grant type not supported")


def _public_key(pem: str):

    if "BEGIN CERTIFICATE" in pem:
        return load_pem_x509_certificate(pem.encode()).public_key()
    return load_pem_public_key(pem.encode())


# --- REST -----------------------------------------------------------------------------------
def _authenticate(request: HttpRequest, version: str) -> Ctx:
    auth = request.headers.get("Authorization", "")
    value = auth[7:].strip() if auth[:7].lower() == "bearer " else auth[6:].strip() if auth[:6].lower() == "oauth " else ""
    tok = AccessToken.objects.filter(token=value).first() if value else None
    if tok is None or tok.expires_at <= dj_timezone.now():
        raise SFError(401, "INVALID_SESSION_ID", "Session expired or invalid")
    return store.api_ctx(api_version=version, user_id=tok.user_id, call_options=request.headers.get("Sforce-Call-Options", ""))


def _count_request() -> tuple[OrgState, bool]:
    """Count one API request against the org's daily limit; False when it is exhausted."""
    allowed = OrgState.objects.filter(id=1, api_requests_used__lt=F("api_requests_limit")).update(api_requests_used=F("api_requests_used") + 1) == 1
    if not allowed:
        OrgState.get()
    return OrgState.objects.get(id=1), allowed


def _limit_header(response: HttpResponse, state: OrgState) -> HttpResponse:
    response["Sforce-Limit-Info"] = f"api-usage={state.api_requests_used}/{state.api_requests_limit}"
    return response


@sandbox_endpoint(SYSTEM, sf_error)
def rest(request: HttpRequest, version: str, path: str) -> HttpResponse:
    try:
        ctx = _authenticate(request, version)
    except SFError as exc:
        return _json(exc.status, exc.as_body())
    OrgState.get()
    if OrgState.objects.filter(id=1, unavailable_requests__gt=0).update(unavailable_requests=F("unavailable_requests") - 1) == 1:
        state = OrgState.objects.get(id=1)
        response = _json(503, [{"message": "Server temporarily unavailable (sandbox maintenance fault).", "errorCode": "SERVER_UNAVAILABLE", "fields": []}])
        if state.unavailable_retry_after:
            response["Retry-After"] = str(state.unavailable_retry_after)
        return response
    state, allowed = _count_request()
    if not allowed:
        return _limit_header(_json(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED", "fields": []}]), state)
    try:
        body = json.loads(request.body) if request.body else None
    except (ValueError, UnicodeDecodeError) as exc:
        return _limit_header(_json(400, [{"message": f"Unexpected character: {exc}", "errorCode": "JSON_PARSER_ERROR", "fields": []}]), state)
    batch = re.search(r"batchSize=(\d+)", request.headers.get("Sforce-Query-Options", ""))
    ctx.batch_size = max(200, min(2000, int(batch.group(1)))) if batch else None
    try:
        with transaction.atomic(using=DB):
            status, payload = dispatch(ctx, request.method, path.strip("/"), request.GET, body)
    except SFError as exc:
        status, payload = exc.status, exc.as_body()
    return _limit_header(_json(status, payload), state)


def versions(request: HttpRequest) -> HttpResponse:
    return JsonResponse([{"label": f"Release {v}", "url": f"/services/data/v{v}.0", "version": f"{v}.0"} for v in range(55, 63)], safe=False)


SOBJECT_PATH = re.compile(r"^sobjects/(?P<type>[A-Za-z0-9_]+)(?:/(?P<a>[^/]+)(?:/(?P<b>[^/]+))?)?$")


def dispatch(ctx: Ctx, method: str, path: str, params, body) -> tuple[int, object]:
    """One REST call inside the request's transaction → (status, JSON body)."""
    method = method.upper()
    if path in ("", "/"):
        return 200, {name: f"{ctx.base}/{name}" for name in ("sobjects", "query", "queryAll", "composite", "limits")}
    if path == "limits" and method == "GET":
        state = OrgState.get()
        return 200, {"DailyApiRequests": {"Max": state.api_requests_limit, "Remaining": max(0, state.api_requests_limit - state.api_requests_used)}}
    if path in ("query", "queryAll") and method == "GET":
        q = params.get("q", "")
        if not q:
            raise SFError(400, "MALFORMED_QUERY", "A query string has to be specified")
        return 200, store.run_query(ctx, q, include_deleted=path == "queryAll", batch_size=getattr(ctx, "batch_size", None))
    m = re.fullmatch(r"(?:query|queryAll)/([^/]+)", path)
    if m and method == "GET":
        return 200, store.query_more(ctx, m.group(1), batch_size=getattr(ctx, "batch_size", None))
    if path == "composite" and method == "POST":
        return 200, composite(ctx, body or {})
    if path == "composite/sobjects" and method == "POST":
        return 200, collection(ctx, body or {}, lambda obj, rec: _create_result(ctx, obj, rec))
    m = re.fullmatch(r"composite/sobjects/([A-Za-z0-9_]+)/([A-Za-z0-9_]+)", path)
    if m and method == "PATCH":
        obj = store.sobject_or_404(m.group(1))
        return 200, collection(ctx, body or {}, lambda _o, rec: _upsert_result(ctx, obj, m.group(2), rec), expected_type=obj.name)
    if path == "sobjects" and method == "GET":
        return 200, describe_global(ctx)
    m = SOBJECT_PATH.match(path)
    if not m:
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
    obj = store.sobject_or_404(m.group("type"))
    a, b = m.group("a"), m.group("b")
    if a is None:
        if method == "GET":
            return 200, {"objectDescribe": _describe_basic(obj, ctx), "recentItems": []}
        if method == "POST":
            rec = store.create(ctx, obj, _body(body))
            return 201, {"id": rec.id, "success": True, "errors": []}
        raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,POST")
    if b is None and a == "describe" and method == "GET":
        return 200, describe(obj, ctx)
    if b is None:
        if method == "GET":
            rec = store.get_record(obj, a)
            only = [f for f in params.get("fields", "").split(",") if f.strip()] if params.get("fields") else None
            return 200, store.render(rec, ctx, only)
        if method == "PATCH":
            store.update(ctx, obj, store.get_record(obj, a), _body(body))
            return 204, None
        if method == "DELETE":
            store.delete(ctx, obj, store.get_record(obj, a))
            return 204, None
        raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE")
    # /sobjects/{Type}/{ExtIdField}/{value}
    if method == "PATCH":
        rec, created = store.upsert(ctx, obj, a, b, _body(body), update_only=str(params.get("updateOnly", "")).lower() == "true")
        if not created and _version_tuple(ctx.api_version) < (46, 0):
            return 204, None
        return (201 if created else 200), {"id": rec.id, "success": True, "errors": [], "created": created}
    f = obj.field(a)
    if f is None or not (f.external_id or f.type == "id"):
        raise SFError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {a}")
    found = store.find_by_field(obj, f, b)
    if len(found) > 1:
        raise SFError(300, "MULTIPLE_CHOICES", "more than one record", body=[f"{ctx.base}/sobjects/{obj.name}/{r.id}" for r in found])
    if not found:
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
    if method == "GET":
        return 200, store.render(found[0], ctx)
    if method == "DELETE":
        store.delete(ctx, obj, found[0])
        return 204, None
    raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")


def _version_tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def _body(body) -> dict:
    if not isinstance(body, dict):
        raise SFError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    return body


def _create_result(ctx: Ctx, obj, rec: dict) -> dict:
    created = store.create(ctx, obj, rec)
    return {"id": created.id, "success": True, "errors": []}


def _upsert_result(ctx: Ctx, obj, field_name: str, rec: dict) -> dict:
    f = obj.field(field_name)
    if f is None:
        raise SFError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field_name}")
    value = next((v for k, v in rec.items() if k.lower() == field_name.lower()), None)
    if value in (None, ""):
        raise SFError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]", [f.name])
    saved, created = store.upsert(ctx, obj, f.name, str(value), {k: v for k, v in rec.items() if k != "attributes"})
    return {"id": saved.id, "success": True, "errors": [], "created": created}


def collection(ctx: Ctx, body: dict, each, expected_type: str | None = None) -> list:
    """sObject Collections: up to 200 records, results in order; allOrNone rolls all back."""
    records = body.get("records") or []
    if len(records) > 200:
        raise SFError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
    all_or_none = bool(body.get("allOrNone"))
    results, failed = [], False
    savepoint = transaction.savepoint(using=DB)
    for item in records:
        type_name = ((item or {}).get("attributes") or {}).get("type") or expected_type
        try:
            obj = store.sobject_or_404(type_name or "")
            if failed and all_or_none:
                raise SFError(
                    400, "ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and the request was using AllOrNone header"
                )
            with transaction.atomic(using=DB):
                results.append(each(obj, {k: v for k, v in item.items() if k != "attributes"}))
        except SFError as exc:
            failed = True
            results.append({"success": False, "errors": [{"statusCode": exc.code, "message": exc.message, "fields": exc.fields}]})
    if failed and all_or_none:
        transaction.savepoint_rollback(savepoint, using=DB)
        rolled = {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
            "fields": [],
        }
        results = [r if not r.get("success") else {"id": r.get("id"), "success": False, "errors": [rolled]} for r in results]
    else:
        transaction.savepoint_commit(savepoint, using=DB)
    return results


_REF = re.compile(r"@\{([A-Za-z0-9_]+)\.([A-Za-z0-9_.\[\]]+)\}")


class _MissingReference(Exception):
    pass


def _resolve_refs(value, refs: dict):
    if isinstance(value, str):

        def sub(m):
            ref, path = m.group(1), m.group(2)
            if ref not in refs:
                raise _MissingReference(ref)
            node = refs[ref]
            for part in re.findall(r"[A-Za-z0-9_]+|\[\d+\]", path):
                node = node[int(part[1:-1])] if part.startswith("[") else (node or {}).get(part)
            return str(node)

        return _REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _resolve_refs(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, refs) for v in value]
    return value


HALTED = "The transaction was rolled back since another operation in the same transaction failed."


def composite(ctx: Ctx, body: dict) -> dict:
    subrequests = body.get("compositeRequest") or []
    if not isinstance(subrequests, list) or not subrequests:
        raise SFError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
    if len(subrequests) > 25:
        raise SFError(400, "INVALID_INPUT", "Received invalid input: more than 25 subrequests")
    all_or_none = bool(body.get("allOrNone"))
    refs: dict = {}
    results = []
    failed_at = None
    savepoint = transaction.savepoint(using=DB)
    for index, sub in enumerate(subrequests):
        ref = sub.get("referenceId", "")
        if failed_at is not None and all_or_none:
            results.append({"body": [{"errorCode": "PROCESSING_HALTED", "message": HALTED}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": ref})
            continue
        try:
            headers = {k.lower() for k in (sub.get("httpHeaders") or {})}
            if headers & {"accept", "authorization", "content-type"}:
                raise SFError(400, "INVALID_HEADER_TYPE", "Subrequests can't set Accept, Authorization or Content-Type")
            url = _resolve_refs(sub.get("url", ""), refs)
            payload = _resolve_refs(sub.get("body"), refs)
            m = re.match(r"^/services/data/v(\d+\.\d)/([^?]*)(?:\?(.*))?$", url)
            if not m:
                raise SFError(400, "INVALID_URL", f"Invalid URL: {url}")

            with transaction.atomic(using=DB):
                status, result = dispatch(ctx, sub.get("method", "GET"), m.group(2).strip("/"), QueryDict(m.group(3) or ""), payload)
        except _MissingReference as exc:
            status, result = (
                400,
                [{"errorCode": "PROCESSING_HALTED", "message": f"Invalid reference specified. No value for {exc.args[0]} found in the previous results."}],
            )
        except SFError as exc:
            status, result = exc.status, exc.as_body()
        headers_out = {}
        if status == 201 and isinstance(result, dict) and result.get("id"):
            headers_out["Location"] = f"{ctx.base}/sobjects/{_type_of(result['id'])}/{result['id']}"
        results.append({"body": result, "httpHeaders": headers_out, "httpStatusCode": status, "referenceId": ref})
        if status < 300 and ref:
            refs[ref] = result if isinstance(result, dict) else {"records": result}
        elif status >= 400:
            failed_at = index if failed_at is None else failed_at
    if failed_at is not None and all_or_none:
        transaction.savepoint_rollback(savepoint, using=DB)
        for i, item in enumerate(results):
            if i != failed_at:
                item.update({"body": [{"errorCode": "PROCESSING_HALTED", "message": HALTED}], "httpStatusCode": 400, "httpHeaders": {}})
    else:
        transaction.savepoint_commit(savepoint, using=DB)
    return {"compositeResponse": results}


def _type_of(record_id: str) -> str:
    obj = schema.PREFIXES.get(record_id[:3])
    return obj.name if obj else "sObject"


def _describe_basic(obj: schema.SObject, ctx: Ctx) -> dict:
    return {
        "name": obj.name,
        "label": obj.label or obj.name,
        "keyPrefix": obj.key_prefix,
        "custom": False,
        "createable": obj.name != "User",
        "updateable": obj.name != "User",
        "deletable": obj.name != "User",
        "queryable": True,
        "urls": {
            "sobject": f"{ctx.base}/sobjects/{obj.name}",
            "describe": f"{ctx.base}/sobjects/{obj.name}/describe",
            "rowTemplate": f"{ctx.base}/sobjects/{obj.name}/{{ID}}",
        },
    }


def describe_global(ctx: Ctx) -> dict:
    return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [_describe_basic(o, ctx) for o in schema.OBJECTS.values()]}


def describe(obj: schema.SObject, ctx: Ctx) -> dict:
    return {
        **_describe_basic(obj, ctx),
        "fields": [
            {
                "name": f.name,
                "type": f.type,
                "createable": f.createable,
                "updateable": f.updateable,
                "nillable": not f.required and f.type != "boolean",
                "externalId": f.external_id,
                "idLookup": f.external_id or f.type == "id",
                "custom": f.name.endswith("__c"),
                "referenceTo": [f.reference_to] if f.reference_to else [],
                "relationshipName": f.relationship or None,
                "defaultValue": f.default,
                "picklistValues": [{"value": v, "label": v, "active": True} for v in f.picklist],
                "restrictedPicklist": f.restricted,
            }
            for f in obj.fields
        ],
    }


# --- sandbox-only controls --------------------------------------------------------------------
ORG_FIELDS = ("api_requests_used", "api_requests_limit", "query_batch_size", "unavailable_requests", "unavailable_retry_after", "session_seconds")


@csrf_exempt
def org_control(request: HttpRequest) -> HttpResponse:
    """GET/PUT /__sandbox__/salesforce/org: API limit, page size, maintenance 503s, session length."""
    state = OrgState.get()
    if request.method in ("PUT", "PATCH", "POST"):
        try:
            data = json.loads(request.body or b"{}")
            for name in ORG_FIELDS:
                if name in data:
                    setattr(state, name, int(data[name]))
        except (ValueError, TypeError) as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        state.save()
    return JsonResponse({name: getattr(state, name) for name in ORG_FIELDS})


@csrf_exempt
def simulate_control(request: HttpRequest, action: str) -> HttpResponse:
    """POST /__sandbox__/salesforce/<action>: drive the simulated org over HTTP (the demo)."""
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "body must be JSON"}, status=400)
    actions = {
        "close-won": lambda: simulate.close_won_deal(**data),
        "amend": lambda: simulate.amend_order(**data),
        "renew": lambda: simulate.renew_contract(**data),
        "cancel": lambda: simulate.cancel_contract(**data),
        "relay": lambda: {"delivered": simulate.relay_pending_events(**data)},
        "expire-tokens": lambda: {"expired": simulate.expire_tokens()},
        "connected-app": lambda: simulate.register_connected_app(**data),
    }
    if action not in actions:
        return JsonResponse({"error": f"unknown action {action}", "actions": sorted(actions)}, status=404)
    try:
        return JsonResponse(actions[action]())
    except (TypeError, ValueError, LookupError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
