"""The Business Central sandbox: API v2.0 on BC's own paths, and Entra's token endpoint.

    POST   /{tenant}/oauth2/v2.0/token                                         client credentials (tokens.py)
    GET    /v2.0/{tenant}/{env}/api/v2.0/companies[({id})]
    GET    …/companies({id})/{set}[?$filter&$select&$expand&$orderby&$top&$skip]  + @odata.nextLink paging
    POST   …/companies({id})/{set}                                             create (documents: deep insert of lines) → 201
    GET    …/companies({id})/{set}({id})                                       read (ETag, @odata.etag)
    PATCH  …/companies({id})/{set}({id})                                       If-Match required → 200
    DELETE …/companies({id})/{set}({id})                                       If-Match checked when sent → 204
    GET|POST …/companies({id})/{set}({id})/{lines}, GET|PATCH|DELETE …/{lines}({id})
    POST   …/companies({id})/{set}({id})/Microsoft.NAV.post                    bound action → 204
    GET|POST /v2.0/{tenant}/{env}/api/v2.0/subscriptions, GET|PATCH|DELETE …/subscriptions('{id}')

Every API call needs a bearer token from the token endpoint; faults from the shared kit apply
first (outage 503, error rate 500, 429), then the token, then BC's own request limit (6,000 per
5 minutes per client, SandboxSettings), then the call. Errors use BC's body
{"error": {"code", "message"}}: a PATCH without If-Match is 400 BadRequest_InvalidToken, a
stale one 409 Request_EntityChanged; an unknown record 404 BadRequest_NotFound; a duplicate key
409 Internal_EntityWithSameKeyExists; validation failures 400 Application_* (ledger.py).

Control (not BC's): /__sandbox__/ (the kit's faults), /__sandbox__/settings (GET, PUT JSON;
POST …/settings/reset), /__sandbox__/notifications/deliver (POST: send due webhook
notifications), /__sandbox__/tokens/revoke (POST: tokens issued before now are refused).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from functools import wraps
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandboxes.db import DB
from sandboxes.kit.faults import garbled, sandbox_endpoint
from sync.connectors.netsuite import wire  # exact-decimal JSON, shared with the connectors

from . import ledger, odata, ratelimit, specs, tokens, webhooks
from .errors import BCError, kit_error
from .models import Company, Entity, SandboxSettings, Subscription
from .seed import ensure_seeded

SYSTEM = "business_central"
JSON = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
_SEGMENT = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9.]*)(?:\((?P<key>[^()]*)\))?$")
WRITERS = {"customers", "salesOrders", "salesInvoices", "salesCreditMemos", "customerPaymentJournals"}


def endpoint(view):
    """The kit's faults first; its garble_responses fault only on writes (a read writes nothing)."""

    @wraps(view)
    def garbling_writes(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        return response if request.method in ("GET", "HEAD") else garbled(SYSTEM, response)

    return sandbox_endpoint(SYSTEM, kit_error, garble=False)(garbling_writes)


def _json_response(body: dict, status: int = 200, *, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(wire.dumps(body), status=status, content_type=JSON)
    response["OData-Version"] = "4.0"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _body(request: HttpRequest) -> dict:
    try:
        body = wire.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BCError(400, "BadRequest_InvalidRequestUrl", f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise BCError(400, "BadRequest_InvalidRequestUrl", "The request body must be a JSON object.")
    return body


def _root(request: HttpRequest, tenant: str, environment: str) -> str:
    return f"{request.scheme}://{request.get_host()}/v2.0/{tenant}/{environment}/api/v2.0"


def _not_allowed(method: str, what: str) -> BCError:
    return BCError(
        405,
        "BadRequest_MethodNotAllowed",
        f"'{method}' requests for '{what}' of EdmType 'Entity' are not allowed within Dynamics 365 Business Central OData web services.",
    )


def _if_match(request: HttpRequest, entity: Entity, *, required: bool) -> None:
    wanted = request.headers.get("If-Match", "").strip()
    if not wanted:
        if required:
            raise BCError(
                400,
                "BadRequest_InvalidToken",
                "Could not validate the client concurrency token required by the service. Please provide a valid token in the client request.",
            )
        return
    if wanted != "*" and wanted != ledger.etag(entity.version, entity.guid):
        raise BCError(409, "Request_EntityChanged", "Another user has already changed the record.")


# --- the API ----------------------------------------------------------------------------------
@endpoint
def api(request: HttpRequest, tenant: str, environment: str, tail: str) -> HttpResponse:
    try:
        config = settings.CONNECTORS["business_central"]
        claims = tokens.verify(request, tenant)
        if environment != config["environment"]:
            raise BCError(404, "NoEnvironment", f"The environment '{environment}' does not exist for tenant '{tenant}'.")
        sandbox = tokens.sandbox_settings()
        ratelimit.admit(str(claims.get("appid")), sandbox)
        ensure_seeded()
        segments = [s for s in tail.strip("/").split("/") if s]
        parsed = []
        for segment in segments:
            match = _SEGMENT.match(segment)
            if not match:
                raise BCError(404, "BadRequest_NotFound", f"Resource not found for the segment '{segment}'.")
            parsed.append((match["name"], match["key"]))
        if not parsed:
            raise BCError(404, "BadRequest_NotFound", "Resource not found for the segment ''.")
        if parsed[0][0] == "subscriptions" and len(parsed) == 1:
            return _subscriptions(request, parsed[0][1], sandbox)
        if parsed[0][0] != "companies":
            raise BCError(404, "BadRequest_NotFound", f"Resource not found for the segment '{parsed[0][0]}'.")
        return _company_route(request, tenant, environment, parsed, sandbox)
    except BCError as exc:
        return exc.response()
    except odata.QueryError as exc:
        return BCError(400, "BadRequest_InvalidRequestUrl", f"Bad Request - Error in query syntax. {exc}").response()


def _company_route(request: HttpRequest, tenant: str, environment: str, parsed: list, sandbox: SandboxSettings) -> HttpResponse:
    root = _root(request, tenant, environment)
    (_, company_key), rest = parsed[0], parsed[1:]
    if company_key is None:
        if rest or request.method != "GET":
            raise _not_allowed(request.method, "companies")
        companies = [_render_company(c) for c in Company.objects.order_by("name")]
        return _json_response({"@odata.context": f"{root}/$metadata#companies", "value": companies})
    company = Company.objects.filter(id=_guid(company_key)).first() if _guid(company_key) else None
    if company is None:
        raise BCError(404, "BadRequest_NotFound", f"The Company does not exist. Identification fields and values: Id='{{{company_key}}}'")
    if not rest:
        if request.method != "GET":
            raise _not_allowed(request.method, "companies")
        return _json_response(_render_company(company))
    set_name, key = rest[0]
    spec = specs.SPECS.get(set_name)
    if spec is None:
        raise BCError(404, "BadRequest_NotFound", f"Resource not found for the segment '{set_name}'.")
    context = f"{root}/$metadata#companies({company.id})/{set_name}"
    if len(rest) == 1:
        if key is None:
            return _collection(request, company, spec, None, context=context, sandbox=sandbox)
        return _entity(request, company, spec, key, None)
    if key is None or len(rest) > 2:
        raise BCError(404, "BadRequest_NotFound", f"Resource not found for the segment '{rest[-1][0]}'.")
    name, child_key = rest[1]
    if name.startswith("Microsoft.NAV."):
        return _action(request, company, spec, key, name.removeprefix("Microsoft.NAV."))
    if name != spec.lines:
        raise BCError(404, "BadRequest_NotFound", f"Resource not found for the segment '{name}'.")
    parent = ledger.find(company, spec.name, key)
    if parent is None:
        raise ledger.not_found(spec, key)
    child = specs.SPECS[name]
    if child_key is None:
        return _collection(request, company, child, parent, context=f"{context}({key})/{name}", sandbox=sandbox)
    return _entity(request, company, child, child_key, parent)


def _guid(text: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(text).strip("'{}")))
    except ValueError:
        return None


def _render_company(company: Company) -> dict:
    created = company.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "id": str(company.id),
        "systemVersion": "25.0.0.0",
        "timestamp": int(company.created_at.timestamp()),
        "name": company.name,
        "displayName": company.display_name,
        "businessProfileId": "",
        "systemCreatedAt": created,
        "systemCreatedBy": specs.NULL_GUID,
        "systemModifiedAt": created,
        "systemModifiedBy": specs.NULL_GUID,
    }


# --- collections -------------------------------------------------------------------------------------
def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["o"])
    except (ValueError, KeyError, TypeError):
        raise BCError(400, "BadRequest_InvalidRequestUrl", f"The skip token '{token}' is not valid.") from None


def _int_option(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BCError(400, "BadRequest_InvalidRequestUrl", f"Invalid value '{raw}' for the query option {name}.") from None
    if value < 0:
        raise BCError(400, "BadRequest_InvalidRequestUrl", f"Invalid value '{raw}' for the query option {name}.")
    return value


def _expand_option(request: HttpRequest, spec: specs.Spec) -> str | None:
    expand = request.GET.get("$expand", "").strip()
    if not expand:
        return None
    if expand != spec.lines or not spec.lines:
        raise BCError(400, "BadRequest_InvalidRequestUrl", f"Could not find a property named '{expand}' on type 'Microsoft.NAV.{spec.type_name}'.")
    return expand


def _select_option(request: HttpRequest, spec: specs.Spec) -> list[str] | None:
    select = [s.strip() for s in request.GET.get("$select", "").split(",") if s.strip()]
    for name in select:
        if name != "id" and name not in spec.field_map:
            raise BCError(400, "BadRequest_InvalidRequestUrl", f"Could not find a property named '{name}' on type 'Microsoft.NAV.{spec.type_name}'.")
    return select or None


def _rendered(entity: Entity, spec: specs.Spec, *, select, expand) -> dict:
    nested = None
    if expand:
        child = specs.SPECS[expand]
        nested = {expand: [ledger.render(line, child) for line in Entity.objects.filter(parent=entity, entity_set=expand).order_by("id")]}
    return ledger.render(entity, spec, select=select, expand=nested)


def _collection(request: HttpRequest, company: Company, spec: specs.Spec, parent: Entity | None, *, context: str, sandbox: SandboxSettings) -> HttpResponse:
    if request.method == "POST":
        return _create(request, company, spec, parent)
    if request.method != "GET":
        raise _not_allowed(request.method, spec.name)
    expression = odata.parse_filter(request.GET["$filter"]) if request.GET.get("$filter", "").strip() else None
    if expression is not None:
        unknown = sorted(f for f in odata.fields_of(expression) if f != "id" and f not in spec.field_map)
        if unknown:
            raise BCError(400, "BadRequest_InvalidRequestUrl", f"Could not find a property named '{unknown[0]}' on type 'Microsoft.NAV.{spec.type_name}'.")
    orderby = odata.parse_orderby(request.GET.get("$orderby", ""))
    for name, _ in orderby:
        if name != "id" and name not in spec.field_map:
            raise BCError(400, "BadRequest_InvalidRequestUrl", f"Could not find a property named '{name}' on type 'Microsoft.NAV.{spec.type_name}'.")
    select, expand = _select_option(request, spec), _expand_option(request, spec)
    top, skip = _int_option(request, "$top"), _int_option(request, "$skip") or 0
    qs = Entity.objects.filter(company=company, entity_set=spec.name)
    if parent is not None:
        qs = qs.filter(parent=parent)
    for name, value in (odata.equalities(expression) if expression is not None else {}).items():
        if isinstance(value, str) and name in spec.field_map:
            qs = qs.filter(**{f"data__{name}__iexact": value})
    rows = []
    for entity in qs.order_by("id"):
        row = {**entity.data, "id": str(entity.guid)}
        if expression is None or odata.evaluate(expression, row):
            rows.append((entity, row))
    for name, descending in reversed(orderby):
        rows.sort(key=lambda pair, name=name: odata.sort_key(pair[1].get(name)), reverse=descending)
    rows = rows[skip:]
    if top is not None:
        rows = rows[:top]
    preferred = odata.max_page_size(request.headers.get("Prefer", ""))
    size = min(preferred or sandbox.max_page_size, sandbox.max_page_size)
    offset = _offset(request.GET["$skiptoken"]) if request.GET.get("$skiptoken") else 0
    page = rows[offset : offset + size]
    body = {"@odata.context": context, "value": [_rendered(entity, spec, select=select, expand=expand) for entity, _ in page]}
    if offset + size < len(rows):
        params = {k: v for k, v in request.GET.items() if k != "$skiptoken"}
        params["$skiptoken"] = _skiptoken(offset + size)
        query = urlencode(params, safe="$'(),", quote_via=quote)
        body["@odata.nextLink"] = f"{request.scheme}://{request.get_host()}{request.path}?{query}"
    headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if preferred else None
    return _json_response(body, headers=headers)


# --- single entities ---------------------------------------------------------------------------------
def _write(company: Company, spec: specs.Spec, parent: Entity | None, body: dict, existing: Entity | None) -> Entity:
    guid = body.get("id") if existing is None else None
    if spec.name == "customers":
        return ledger.write_customer(company, body, existing, guid=guid)
    if spec.name == "customerPaymentJournals":
        return ledger.write_journal(company, body, existing, guid=guid)
    if spec.name in ("salesOrders", "salesInvoices", "salesCreditMemos"):
        return ledger.write_document(company, spec, body, existing, guid=guid)
    if spec.name == "customerPayments":
        return ledger.write_payment(company, parent, body, existing)
    if spec.parent_key:
        return ledger.write_line(company, spec, parent, body, existing)
    raise _not_allowed("POST" if existing is None else "PATCH", spec.name)


def _parent_for(company: Company, spec: specs.Spec, parent: Entity | None, body: dict | None, existing: Entity | None) -> Entity | None:
    """A line's document, locked: the one in the path, the line's own, or (top-level POST) the body's."""
    if not spec.parent_key:
        return None
    if parent is None and existing is not None:
        parent = existing.parent
    if parent is None and body is not None:
        parent = ledger.find(company, specs.DOCUMENT_OF_LINES[spec.name], body.get(spec.parent_key) or "")
        if parent is None:
            raise BCError(400, "BadRequest_RequiredParamNotProvided", f"You must specify a {spec.parent_key} to create a {spec.type_name}.")
        body.pop(spec.parent_key, None)
    return Entity.objects.select_for_update().get(pk=parent.pk)


def _create(request: HttpRequest, company: Company, spec: specs.Spec, parent: Entity | None) -> HttpResponse:
    if "POST" not in spec.methods or (not spec.parent_key and spec.name not in WRITERS):
        raise _not_allowed("POST", spec.name)
    body = _body(request)
    with transaction.atomic(using=DB):
        locked_parent = _parent_for(company, spec, parent, body, None)
        entity = _write(company, spec, locked_parent, body, None)
    entity.refresh_from_db()
    location = f"{request.scheme}://{request.get_host()}{request.path.rstrip('/')}({entity.guid})"
    headers = {"Location": location, "ETag": ledger.etag(entity.version, entity.guid)}
    if "return-no-content" in request.headers.get("Prefer", "").lower():
        response = HttpResponse(status=204)
        for name, value in headers.items():
            response[name] = value
        return response
    return _json_response(ledger.render(entity, spec), 201, headers=headers)


def _entity(request: HttpRequest, company: Company, spec: specs.Spec, key: str, parent: Entity | None) -> HttpResponse:
    def locate(lock: bool) -> Entity:
        entity = ledger.find(company, spec.name, key, lock=lock)
        if entity is None or (parent is not None and entity.parent_id != parent.pk):
            raise ledger.not_found(spec, key)
        return entity

    if request.method == "GET":
        entity = locate(False)
        body = _rendered(entity, spec, select=_select_option(request, spec), expand=_expand_option(request, spec))
        return _json_response(body, headers={"ETag": ledger.etag(entity.version, entity.guid)})
    if request.method not in ("PATCH", "DELETE") or request.method not in spec.methods:
        raise _not_allowed(request.method, spec.name)
    body = _body(request) if request.method == "PATCH" else None
    with transaction.atomic(using=DB):
        current = locate(False)
        _parent_for(company, spec, parent, None, current)  # the document first, then the line: the order posting locks in
        entity = locate(True)
        _if_match(request, entity, required=request.method == "PATCH")
        if request.method == "DELETE":
            ledger.delete_entity(entity)
            return HttpResponse(status=204)
        entity = _write(company, spec, entity.parent, body, entity)
    entity.refresh_from_db()
    return _json_response(ledger.render(entity, spec), headers={"ETag": ledger.etag(entity.version, entity.guid)})


def _action(request: HttpRequest, company: Company, spec: specs.Spec, key: str, action: str) -> HttpResponse:
    if request.method != "POST":
        raise _not_allowed(request.method, f"Microsoft.NAV.{action}")
    if action not in spec.actions:
        raise BCError(400, "BadRequest_NotFound", f"The action 'Microsoft.NAV.{action}' is not bound to '{spec.name}'.")
    with transaction.atomic(using=DB):
        entity = ledger.find(company, spec.name, key, lock=True)
        if entity is None:
            raise ledger.not_found(spec, key)
        _if_match(request, entity, required=False)  # BC checks a bound action's ETag only when one is sent
        if spec.name == "salesInvoices":
            ledger.post_invoice(company, entity)
        elif spec.name == "salesCreditMemos":
            ledger.post_credit_memo(company, entity)
        else:
            ledger.post_journal(company, entity)
    return HttpResponse(status=204)


# --- webhook subscriptions -----------------------------------------------------------------------------
def _subscriptions(request: HttpRequest, key: str | None, sandbox: SandboxSettings) -> HttpResponse:
    lifetime = sandbox.subscription_lifetime_seconds
    if key is None:
        if request.method == "GET":
            return _json_response({"value": [webhooks.render(s) for s in Subscription.objects.order_by("created_at")]})
        if request.method == "POST":
            sub = webhooks.create(_body(request), supported=specs.WEBHOOK_SETS, lifetime_seconds=lifetime)
            return _json_response(webhooks.render(sub), 201, headers={"ETag": webhooks.etag(sub)})
        raise _not_allowed(request.method, "subscriptions")
    sub = Subscription.objects.filter(subscription_id=key.strip("'")).first()
    if sub is None:
        raise BCError(
            404, "BadRequest_NotFound", f"The API Webhook Subscription does not exist. Identification fields and values: Subscription Id='{key.strip(chr(39))}'"
        )
    if request.method == "GET":
        return _json_response(webhooks.render(sub), headers={"ETag": webhooks.etag(sub)})
    if request.method == "PATCH":
        sub = webhooks.renew(sub, _body(request), if_match=request.headers.get("If-Match", "").strip(), supported=specs.WEBHOOK_SETS, lifetime_seconds=lifetime)
        return _json_response(webhooks.render(sub), headers={"ETag": webhooks.etag(sub)})
    if request.method == "DELETE":
        wanted = request.headers.get("If-Match", "").strip()
        if wanted and wanted != "*" and wanted != webhooks.etag(sub):
            raise BCError(409, "Request_EntityChanged", "Another user has already changed the record.")
        sub.delete()
        return HttpResponse(status=204)
    raise _not_allowed(request.method, "subscriptions")


# --- the sandbox's own controls ----------------------------------------------------------------------------
SETTING_FIELDS = (
    "rate_limit_requests",
    "rate_limit_window_seconds",
    "max_page_size",
    "token_lifetime_seconds",
    "subscription_lifetime_seconds",
    "notification_delay_seconds",
    "collection_threshold",
    "retry_hours",
)


def _settings_dict(config: SandboxSettings) -> dict:
    return {name: getattr(config, name) for name in SETTING_FIELDS} | {
        "tokens_valid_after": config.tokens_valid_after.isoformat() if config.tokens_valid_after else None
    }


@csrf_exempt
def settings_view(request: HttpRequest) -> HttpResponse:
    config, _ = SandboxSettings.objects.get_or_create(name="business_central")
    if request.method in ("PUT", "PATCH", "POST"):
        try:
            data = json.loads(request.body or b"{}")
            for name, value in data.items():
                if name not in SETTING_FIELDS:
                    return JsonResponse({"errors": {name: "unknown setting"}}, status=400)
                if int(value) < 0 or (name in ("rate_limit_window_seconds", "max_page_size") and int(value) < 1):
                    return JsonResponse({"errors": {name: "out of range"}}, status=400)
                setattr(config, name, int(value))
        except (ValueError, TypeError, AttributeError):
            return JsonResponse({"error": "body must be a JSON object of integer settings"}, status=400)
        config.save()
    return JsonResponse(_settings_dict(config))


@csrf_exempt
def settings_reset(request: HttpRequest) -> HttpResponse:
    SandboxSettings.objects.filter(name="business_central").delete()
    return JsonResponse(_settings_dict(SandboxSettings()))


@csrf_exempt
def revoke_tokens(request: HttpRequest) -> HttpResponse:
    config, _ = SandboxSettings.objects.get_or_create(name="business_central")
    config.tokens_valid_after = timezone.now()
    config.save(update_fields=["tokens_valid_after"])
    return JsonResponse(_settings_dict(config))


@csrf_exempt
def deliver_notifications(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return JsonResponse({"error": "POST to deliver"}, status=405)
    config = tokens.sandbox_settings()
    summary = webhooks.deliver(
        delay_seconds=config.notification_delay_seconds, collection_threshold=config.collection_threshold, retry_hours=config.retry_hours
    )
    return JsonResponse(summary)
