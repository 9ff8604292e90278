"""Stripe's REST API on its own paths: Bearer sk_ auth, form-encoded bodies, JSON answers,
Stripe's error body, Idempotency-Key replay, and the sandbox's fault injection on every path."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from sandboxes.db import DB
from sandboxes.kit.faults import idempotent, sandbox_endpoint

from . import billing
from .billing import RequestInfo, StripeError, from_param_error, new_id
from .models import SandboxEvent, StripeObject
from .params import ParamError, as_int, decode

SYSTEM = "stripe"
NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth "
    "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
    "or we can help at https://support.stripe.com/."
)
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")


def respond(body: dict, status: int = 200, request: HttpRequest | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body, indent=2), status=status, content_type="application/json")
    response["Request-Id"] = getattr(request, "stripe_request_id", None) or new_id("req", 14)
    response["Stripe-Version"] = (request.headers.get("Stripe-Version") if request is not None else None) or settings.CONNECTORS["stripe"]["api_version"]
    response["Cache-Control"] = "no-cache, no-store"
    return response


def error_response(exc: StripeError, request: HttpRequest | None = None) -> HttpResponse:
    response = respond(exc.body(), exc.status, request)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Basic realm="Stripe"'
    return response


def fault_error(status: int, code: str, message: str, field: str) -> HttpResponse:
    """sandbox_kit's fault builder, in Stripe's words."""
    if status == 429:
        exc = StripeError(429, "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.", code="rate_limit")
    elif status >= 500:
        exc = StripeError(status, message, type="api_error")
    else:
        exc = StripeError(status, message, code=code.lower(), param=field)
    return error_response(exc)


def _mask(key: str) -> str:
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "*" * len(key)


def authenticate(request: HttpRequest) -> StripeError | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    key = ""
    if scheme.lower() == "bearer":
        key = value.strip()
    elif scheme.lower() == "basic":
        try:
            key = base64.b64decode(value.strip()).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            key = ""
    if not key:
        return StripeError(401, NO_KEY)
    if key != settings.CONNECTORS["stripe"]["api_key"]:
        return StripeError(401, f"Invalid API Key provided: {_mask(key)}")
    version = request.headers.get("Stripe-Version")
    if version and not VERSION.match(version):
        return StripeError(400, f"Invalid Stripe API version: {version}")
    return None


def api(handler: Callable[..., dict]):
    """Stripe plumbing around a handler(params, info, **url_kwargs) → dict."""

    @sandbox_endpoint(SYSTEM, fault_error)
    @wraps(handler)
    def view(request: HttpRequest, **kwargs) -> HttpResponse:
        request.stripe_request_id = new_id("req", 14)
        problem = authenticate(request)
        if problem is not None:
            return error_response(problem, request)
        key = request.headers.get("Idempotency-Key") or None
        if key and len(key) > 255:
            return error_response(StripeError(400, "Idempotency keys must be at most 255 characters long.", type="idempotency_error"), request)
        try:
            raw = request.body.decode() if request.method == "POST" else request.META.get("QUERY_STRING", "")
            params = decode(raw)
        except (ParamError, UnicodeDecodeError) as exc:
            return error_response(StripeError(400, str(exc), param=getattr(exc, "param", "")), request)
        info = RequestInfo(request.stripe_request_id, key if request.method in ("POST", "DELETE") else None)

        def produce() -> HttpResponse:
            try:
                with transaction.atomic(using=DB):
                    return respond(handler(request.method, params, info, **kwargs), 200, request)
            except StripeError as exc:
                return error_response(exc, request)
            except ParamError as exc:
                return error_response(from_param_error(exc), request)

        if request.method != "POST" or not key:
            return produce()
        mismatch = StripeError(
            400,
            f"Keys for idempotent requests can only be used with the same parameters they were first used with. "
            f"Try using a key other than '{key}' if you meant to execute a different request.",
            type="idempotency_error",
        )
        response = idempotent(
            SYSTEM, request, key, produce, mismatch=lambda: error_response(mismatch, request), store_status=lambda status: status < 400 or status >= 500
        )  # Stripe keeps 500s, not 4xx
        response["Idempotency-Key"] = key
        return response

    return view


def method_not_allowed(method: str, path: str) -> StripeError:
    return StripeError(404, f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.")


# --- lists ------------------------------------------------------------------------------------
def page(queryset, params: dict, url: str, render=lambda row: row.data) -> dict:
    limit = as_int(params.get("limit", 10), "limit", minimum=1)
    if limit > 100:
        raise StripeError(400, "This value must be less than or equal to 100.", code="parameter_invalid_integer", param="limit")
    if params.get("starting_after"):
        anchor = queryset.model.objects.filter(id=params["starting_after"]).values_list("seq", flat=True).first()
        if anchor is None:
            raise billing.missing("object", params["starting_after"], "starting_after")
        rows = list(queryset.filter(seq__lt=anchor).order_by("-seq")[: limit + 1])
    elif params.get("ending_before"):
        anchor = queryset.model.objects.filter(id=params["ending_before"]).values_list("seq", flat=True).first()
        if anchor is None:
            raise billing.missing("object", params["ending_before"], "ending_before")
        rows = list(queryset.filter(seq__gt=anchor).order_by("seq")[: limit + 1])[::-1]
    else:
        rows = list(queryset.order_by("-seq")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[1:] if has_more and params.get("ending_before") else rows[:limit]
    return {"object": "list", "data": [render(r) for r in rows], "has_more": has_more, "url": url}


def _created_filter(queryset, params: dict):
    created = params.get("created")
    if isinstance(created, dict):
        for op in ("gt", "gte", "lt", "lte"):
            if created.get(op):
                queryset = queryset.filter(**{f"created__{op}": as_int(created[op], f"created[{op}]")})
    elif created:
        queryset = queryset.filter(created=as_int(created, "created"))
    return queryset


def objects(kind: str):
    return StripeObject.objects.filter(object=kind)


# --- endpoints ----------------------------------------------------------------------------------
@api
def customers(method, params, info):
    if method == "POST":
        return billing.create_customer(params, info)
    qs = objects("customer")
    if params.get("email"):
        qs = qs.filter(email=params["email"])
    return page(_created_filter(qs, params), params, "/v1/customers")


@api
def customer_search(method, params, info):
    found = billing.search_customers(params.get("query", ""))
    limit = as_int(params.get("limit", 10), "limit", minimum=1)
    return {"object": "search_result", "data": found[:limit], "has_more": len(found) > limit, "next_page": None, "url": "/v1/customers/search"}


@api
def customer(method, params, info, customer_id):
    if method == "POST":
        return billing.update_customer(customer_id, params, info)
    if method == "GET":
        return billing.get("customer", customer_id, label="customer").data
    raise method_not_allowed(method, f"/v1/customers/{customer_id}")


@api
def products(method, params, info):
    if method == "POST":
        return billing.create_product(params, info)
    return page(objects("product"), params, "/v1/products")


@api
def product(method, params, info, product_id):
    if method != "GET":
        raise method_not_allowed(method, f"/v1/products/{product_id}")
    return billing.get("product", product_id, label="product").data


@api
def prices(method, params, info):
    if method == "POST":
        return billing.create_price(params, info)
    qs = objects("price")
    if params.get("product"):
        qs = qs.filter(data__product=params["product"])
    return page(qs, params, "/v1/prices")


@api
def price(method, params, info, price_id):
    if method != "GET":
        raise method_not_allowed(method, f"/v1/prices/{price_id}")
    return billing.get("price", price_id, label="price").data


@api
def subscriptions(method, params, info):
    if method == "POST":
        return billing.create_subscription(params, info)
    qs = objects("subscription")
    if params.get("customer"):
        qs = qs.filter(customer=params["customer"])
    status = params.get("status") or ""
    if status and status != "all":
        qs = qs.filter(data__status=status)
    elif not status:
        qs = qs.exclude(data__status__in=["canceled", "incomplete_expired"])  # Stripe's default
    return page(_created_filter(qs, params), params, "/v1/subscriptions")


@api
def subscription(method, params, info, subscription_id):
    if method == "POST":
        return billing.update_subscription(subscription_id, params, info)
    if method == "DELETE":
        return billing.cancel_subscription(subscription_id, params, info)
    return billing.get("subscription", subscription_id, label="subscription").data


@api
def invoices(method, params, info):
    if method != "GET":
        raise method_not_allowed(method, "/v1/invoices")
    qs = objects("invoice")
    if params.get("customer"):
        qs = qs.filter(customer=params["customer"])
    if params.get("subscription"):
        qs = qs.filter(subscription=params["subscription"])
    if params.get("status"):
        qs = qs.filter(data__status=params["status"])
    return page(_created_filter(qs, params), params, "/v1/invoices")


@api
def invoice(method, params, info, invoice_id):
    if method != "GET":
        raise method_not_allowed(method, f"/v1/invoices/{invoice_id}")
    return billing.get("invoice", invoice_id, label="invoice").data


@api
def credit_notes(method, params, info):
    if method == "POST":
        return billing.create_credit_note(params, info)
    qs = objects("credit_note")
    if params.get("invoice"):
        qs = qs.filter(data__invoice=params["invoice"])
    if params.get("customer"):
        qs = qs.filter(customer=params["customer"])
    return page(qs, params, "/v1/credit_notes")


@api
def credit_note(method, params, info, credit_note_id):
    if method != "GET":
        raise method_not_allowed(method, f"/v1/credit_notes/{credit_note_id}")
    return billing.get("credit_note", credit_note_id, label="credit note").data


@api
def events(method, params, info):
    if method != "GET":
        raise method_not_allowed(method, "/v1/events")
    qs = SandboxEvent.objects.all()
    if params.get("type"):
        kind = params["type"]
        qs = qs.filter(type__startswith=kind[:-1]) if kind.endswith("*") else qs.filter(type=kind)
    if params.get("types"):
        qs = qs.filter(type__in=list(params["types"]))
    return page(_created_filter(qs, params), params, "/v1/events", render=billing.event_json)


@api
def event(method, params, info, event_id):
    row = SandboxEvent.objects.filter(id=event_id).first()
    if row is None:
        raise billing.missing("event", event_id)
    return billing.event_json(row)


@api
def meter_events(method, params, info):
    if method != "POST":
        raise method_not_allowed(method, "/v1/billing/meter_events")
    return billing.create_meter_event(params, info)


# --- sandbox introspection (not Stripe's API) ------------------------------------------------------
def counts(request: HttpRequest) -> HttpResponse:
    """GET /__sandbox__/counts?object=subscription[&idempotency_key=…][&customer=…]: how many were created."""
    qs = StripeObject.objects.all()
    for name in ("object", "idempotency_key", "customer", "subscription"):
        if request.GET.get(name):
            qs = qs.filter(**{name: request.GET[name]})
    if request.GET.get("order_number"):
        qs = qs.filter(data__metadata__order_number=request.GET["order_number"])
    return JsonResponse({"count": qs.count(), "filters": request.GET.dict()})
