"""The NetSuite sandbox: REST Record Service and SuiteQL on NetSuite's own paths.

    POST   /services/rest/record/v1/{type}                create → 204 + Location
    GET    /services/rest/record/v1/{type}                list ids (paged)
    GET    /services/rest/record/v1/{type}/{id|eid:X}     read (?expandSubResources=true for lines)
    PATCH  /services/rest/record/v1/{type}/{id|eid:X}     update → 204
    PUT    /services/rest/record/v1/{type}/eid:X          upsert → 204 + Location
    DELETE /services/rest/record/v1/{type}/{id|eid:X}     → 204
    POST   /services/rest/query/v1/suiteql?limit=&offset= SuiteQL (header Prefer: transient)

Every call needs a valid TBA (OAuth 1.0a HMAC-SHA256) header for the configured account and
token (see tba.py). Errors use NetSuite's body {"type","title","status","o:errorDetails":[…]}.
Faults (outage, error rate, latency, 429, fail_records) come from the shared sandbox kit.

ASSUMPTIONS, where NetSuite's documentation is silent (API_REFERENCE.md marks them [U]):
- PATCH answers 204; PUT-by-external-id answers 204 with a Location header, like create.
- The REST concurrency limit answers 429 + Retry-After with o:errorCode REQUEST_LIMIT_EXCEEDED
  (the sandbox kit's code); real NetSuite's status and code for REST are undocumented.
- A missing required field is 400 USER_ERROR "Please enter value(s) for: <label>" with
  o:errorPath naming the field; a duplicate external id on POST is 400 DUP_RCRD.
- Sublists (item.items, apply.items) on PATCH/PUT: lines carrying "line" update that line,
  other lines are added; `?replace=item` replaces the whole sublist (NetSuite's replace param).
- Line amounts are rounded to the currency's 2 decimals; rates keep their precision.
- SuiteQL without `Prefer: transient` is 400 INVALID_HEADER; limit above 1000 is 400.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from sandboxes.db import DB, connection
from sandboxes.kit.faults import failing_record, sandbox_endpoint
from sync.connectors.netsuite import wire

from . import suiteql, tba
from .models import Currency, ExternalIdLedger, Record, Subsidiary
from .seed import ensure_seeded

log = logging.getLogger(__name__)
SYSTEM = "netsuite"
CONTENT_TYPE = "application/vnd.oracle.resource+json; type=singular-resource"
ERROR_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=error"
RFC2616 = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
ERROR_TYPES = {
    400: (f"{RFC2616}#sec10.4.1", "Bad Request"),
    401: (f"{RFC2616}#sec10.4.2", "Unauthorized"),
    403: (f"{RFC2616}#sec10.4.4", "Forbidden"),
    404: (f"{RFC2616}#sec10.4.5", "Not Found"),
    405: (f"{RFC2616}#sec10.4.6", "Method Not Allowed"),
    429: ("https://tools.ietf.org/html/rfc6585#section-4", "Too Many Requests"),  # ASSUMPTION: see module docstring
    500: (f"{RFC2616}#sec10.5.1", "Internal Server Error"),
    503: (f"{RFC2616}#sec10.5.4", "Service Unavailable"),
}
KIT_CODES = {"UNKNOWN_EXCEPTION": "UNEXPECTED_ERROR"}  # the kit's generic 500 in NetSuite's words
MAX_SUITEQL_LIMIT = 1000


# --- errors --------------------------------------------------------------------------------
def error_response(status: int, code: str, detail: str, path: str = "", **extra) -> HttpResponse:
    type_uri, title = ERROR_TYPES.get(status, (f"{RFC2616}#sec10", "Error"))
    item = {"detail": detail, "o:errorCode": code}
    if path:
        item["o:errorPath"] = path
    item.update(extra)
    body = {"type": type_uri, "title": title, "status": status, "o:errorDetails": [item]}
    return HttpResponse(wire.dumps(body), status=status, content_type=ERROR_CONTENT_TYPE)


def kit_error(status: int, code: str, message: str, field_name: str) -> HttpResponse:
    """Error builder for the shared fault kit (outage 503, error rate 500, 429)."""
    return error_response(status, KIT_CODES.get(code, code), message, field_name)


class RecordError(Exception):
    def __init__(self, status: int, code: str, detail: str, path: str = ""):
        super().__init__(detail)
        self.status, self.code, self.detail, self.path = status, code, detail, path

    def response(self) -> HttpResponse:
        return error_response(self.status, self.code, self.detail, self.path)


def invalid_value(value, field_path: str) -> RecordError:
    name = field_path.rsplit(".", 1)[-1]
    return RecordError(
        400, "INVALID_CONTENT", f"Error while accessing a resource. You have entered an Invalid Field Value {value} for the following field: {name}", field_path
    )


def required(label: str, field_path: str) -> RecordError:
    return RecordError(400, "USER_ERROR", f"Error while accessing a resource. Please enter value(s) for: {label}.", field_path)


def not_found() -> RecordError:
    return RecordError(404, "NONEXISTENT_ID", "The record instance does not exist. Provide a valid record instance ID.")


# --- authentication --------------------------------------------------------------------------
def tba_required(view):
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        creds = settings.CONNECTORS["netsuite"]
        try:
            tba.verify_request(
                request,
                account_id=creds["account_id"],
                consumer_key=creds["consumer_key"],
                consumer_secret=creds["consumer_secret"],
                token_id=creds["token_id"],
                token_secret=creds["token_secret"],
            )
        except tba.InvalidLogin as exc:
            log.info("netsuite sandbox refused login: %s", exc)
            return error_response(
                401,
                "INVALID_LOGIN",
                "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at "
                "Setup > Users/Roles > User Management > View Login Audit Trail.",
            )
        ensure_seeded()
        return view(request, *args, **kwargs)

    return wrapped


def endpoint(view):
    return sandbox_endpoint(SYSTEM, kit_error)(tba_required(view))


def query_endpoint(view):
    """SuiteQL: a read, outside the garble_responses fault (it garbles the answers of record calls)."""
    return sandbox_endpoint(SYSTEM, kit_error, garble=False)(tba_required(view))


# --- record types ----------------------------------------------------------------------------
ITEM_TYPES = tuple(suiteql.ITEM_TYPES)


@dataclass(frozen=True)
class Sublist:
    refs: dict[str, str] = field(default_factory=dict)
    required: tuple[tuple[str, str], ...] = ()
    lines_required: bool = False


@dataclass(frozen=True)
class Spec:
    refs: dict[str, str]  # field → what it points at: customer | subsidiary | currency | item | <transaction type>
    required: tuple[tuple[str, str], ...]  # (field, label shown in NetSuite's message)
    sublists: dict[str, Sublist] = field(default_factory=dict)
    tran_prefix: str = ""  # transactions get an auto tranId
    readonly: bool = False


LINE_ITEMS = Sublist(refs={"item": "item"}, required=(("item", "Item"),), lines_required=True)
TRANSACTION_REFS = {"entity": "customer", "subsidiary": "subsidiary", "currency": "currency"}
SPECS: dict[str, Spec] = {
    "customer": Spec(
        refs={"subsidiary": "subsidiary", "currency": "currency", "parent": "customer"},
        required=(("companyName", "Company Name"), ("subsidiary", "Primary Subsidiary")),
    ),
    "salesOrder": Spec(refs=TRANSACTION_REFS, required=(("entity", "Customer"),), sublists={"item": LINE_ITEMS}, tran_prefix="SO"),
    "invoice": Spec(
        refs={**TRANSACTION_REFS, "createdFrom": "salesOrder"}, required=(("entity", "Customer"),), sublists={"item": LINE_ITEMS}, tran_prefix="INV"
    ),
    "creditMemo": Spec(
        refs={**TRANSACTION_REFS, "createdFrom": "invoice"}, required=(("entity", "Customer"),), sublists={"item": LINE_ITEMS}, tran_prefix="CM"
    ),
    "customerPayment": Spec(
        refs={"customer": "customer", "subsidiary": "subsidiary", "currency": "currency"},
        required=(("customer", "Customer"), ("payment", "Payment Amount")),
        sublists={"apply": Sublist(refs={"doc": "invoice"}, required=(("doc", "Document"),))},
        tran_prefix="PYMT",
    ),
    "inventoryItem": Spec(refs={}, required=(("itemId", "Item Name/Number"),)),
    "nonInventorySaleItem": Spec(refs={}, required=(("itemId", "Item Name/Number"),)),
    "subsidiary": Spec(refs={"currency": "currency"}, required=(), readonly=True),
    "currency": Spec(refs={}, required=(), readonly=True),
}
STATUSES = {
    "salesOrder": {"B": "Pending Fulfillment", "H": "Closed"},
    "invoice": {"A": "Open", "B": "Paid In Full"},
    "creditMemo": {"A": "Open"},
    "customerPayment": {"B": "Undeposited"},
}


def _ref_exists(target: str, ref_id: str) -> bool:
    if not ref_id.isdigit():
        return False
    if target == "subsidiary":
        return Subsidiary.objects.filter(id=int(ref_id)).exists()
    if target == "currency":
        return Currency.objects.filter(id=int(ref_id)).exists()
    types = ITEM_TYPES if target == "item" else (target,)
    return Record.objects.filter(id=int(ref_id), record_type__in=types).exists()


def _ref_name(target: str, ref_id: str) -> str | None:
    if not str(ref_id).isdigit():
        return None
    if target == "subsidiary":
        return Subsidiary.objects.filter(id=int(ref_id)).values_list("name", flat=True).first()
    if target == "currency":
        return Currency.objects.filter(id=int(ref_id)).values_list("symbol", flat=True).first()
    record = Record.objects.filter(id=int(ref_id)).first()
    if record is None:
        return None
    d = record.data
    return d.get("companyName") or d.get("itemId") or d.get("tranId") or d.get("entityId")


def _decimal(value, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise invalid_value(value, path)
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise invalid_value(value, path) from exc
    if not result.is_finite():
        raise invalid_value(value, path)
    return result


def _normalize_ref(value, path: str) -> dict:
    if not isinstance(value, dict) or "id" not in value or value["id"] in (None, ""):
        raise invalid_value(value if not isinstance(value, dict) else value.get("id"), path)
    return {"id": str(value["id"])}


# --- writing records ---------------------------------------------------------------------------
def _merge_sublist(existing: list[dict], incoming, path: str, replace: bool) -> list[dict]:
    if not isinstance(incoming, dict) or not isinstance(incoming.get("items", []), list):
        raise invalid_value(incoming, path)
    lines = [] if replace else [dict(line) for line in existing]
    next_line = max([int(line.get("line", 0)) for line in lines] + [0]) + 1
    for raw in incoming.get("items", []):
        if not isinstance(raw, dict):
            raise invalid_value(raw, f"{path}.items")
        number = raw.get("line")
        target = next((line for line in lines if number is not None and str(line.get("line")) == str(number)), None)
        if target is not None:
            target.update(raw)
            target["line"] = int(target["line"])
        else:
            lines.append({**raw, "line": next_line})
            next_line += 1
    return lines


def _build(record_type: str, spec: Spec, body: dict, existing: Record | None, replace: set[str]) -> dict:
    """The record's fields after applying `body` (validated, references checked, totals computed)."""
    data = dict(existing.data) if existing else {}
    for key, value in body.items():
        if key in ("id", "links", "externalId"):
            continue
        if key in spec.sublists:
            current = (data.get(key) or {}).get("items", [])
            data[key] = {"items": _merge_sublist(current, value, key, replace=key in replace or existing is None)}
        elif key in spec.refs:
            data[key] = None if value is None else _normalize_ref(value, key)
        else:
            data[key] = value
    for name, label in spec.required:
        if data.get(name) in (None, "", {}):
            raise required(label, name)
    for name, target in spec.refs.items():
        if data.get(name) and not _ref_exists(target, data[name]["id"]):
            raise invalid_value(data[name]["id"], name)
    for sub_name, sub in spec.sublists.items():
        lines = (data.get(sub_name) or {}).get("items", [])
        if sub.lines_required and not lines:
            raise RecordError(400, "USER_ERROR", "Error while accessing a resource. You must enter at least one line item for this transaction.", sub_name)
        for i, line in enumerate(lines):
            path = f"{sub_name}.items[{i}]"
            for name, label in sub.required:
                if line.get(name) in (None, "", {}):
                    raise required(label, f"{path}.{name}")
            for name, target in sub.refs.items():
                if line.get(name) is not None:
                    line[name] = _normalize_ref(line[name], f"{path}.{name}")
                    if not _ref_exists(target, line[name]["id"]):
                        raise invalid_value(line[name]["id"], f"{path}.{name}")
    _derive(record_type, spec, data)
    return data


def _derive(record_type: str, spec: Spec, data: dict) -> None:
    """Defaults and totals NetSuite fills in: subsidiary/currency from the customer, line amounts, total."""
    entity = data.get("entity") or data.get("customer")
    if spec.tran_prefix and entity:
        customer = Record.objects.filter(id=int(entity["id"]), record_type="customer").first()
        if customer is not None:
            data.setdefault("subsidiary", customer.data.get("subsidiary"))
            data.setdefault("currency", customer.data.get("currency"))
        data.setdefault("tranDate", timezone.now().date().isoformat())
    if record_type == "customer" and not data.get("currency") and data.get("subsidiary"):
        data["currency"] = {"id": str(Subsidiary.objects.get(id=int(data["subsidiary"]["id"])).currency_id)}
    if record_type == "customer":
        data.setdefault("entityId", data.get("companyName"))
        data.setdefault("isPerson", False)
    if record_type in ITEM_TYPES:
        data.setdefault("isInactive", False)
    cent = Decimal("0.01")
    if "item" in spec.sublists:
        total = Decimal(0)
        for i, line in enumerate(data.get("item", {}).get("items", [])):
            path = f"item.items[{i}]"
            quantity = _decimal(line.get("quantity", 1), f"{path}.quantity")
            line["quantity"] = quantity
            if line.get("rate") is not None:
                line["rate"] = _decimal(line["rate"], f"{path}.rate")
            if line.get("amount") is not None:
                amount = _decimal(line["amount"], f"{path}.amount")
            elif line.get("rate") is not None:
                amount = quantity * line["rate"]
            else:
                raise required("Amount", f"{path}.amount")
            line["amount"] = amount.quantize(cent, ROUND_HALF_UP)
            line.setdefault("isClosed", False)
            total += line["amount"]
        data["subtotal"] = total
        data["total"] = total
    if record_type == "customerPayment":
        data["payment"] = _decimal(data["payment"], "payment").quantize(cent, ROUND_HALF_UP)
        data["total"] = data["payment"]
        applied = Decimal(0)
        for i, line in enumerate(data.get("apply", {}).get("items", [])):
            line.setdefault("apply", True)
            if line.get("amount") is not None:
                line["amount"] = _decimal(line["amount"], f"apply.items[{i}].amount").quantize(cent, ROUND_HALF_UP)
            if line["apply"]:
                applied += line.get("amount") or Decimal(0)
        data["applied"] = applied
        data["unapplied"] = data["payment"] - applied
    if record_type == "salesOrder":
        lines = data.get("item", {}).get("items", [])
        status = "H" if lines and all(line.get("isClosed") for line in lines) else "B"
        data["status"] = {"id": status, "refName": STATUSES[record_type][status]}
    elif record_type in ("creditMemo", "customerPayment"):
        status = next(iter(STATUSES[record_type]))
        data["status"] = {"id": status, "refName": STATUSES[record_type][status]}


def _check_application(data: dict, existing: Record | None) -> None:
    """NetSuite applies a payment to an invoice up to the invoice's amount due; what is left stays
    unapplied on the payment (a customer credit). [U] the error code for applying more."""
    previous = {}
    for line in (existing.data if existing else {}).get("apply", {}).get("items", []):
        if line.get("doc") and line.get("apply", True):
            previous[line["doc"]["id"]] = Decimal(str(line.get("amount") or 0))
    for i, line in enumerate(data.get("apply", {}).get("items", [])):
        if not line.get("apply", True) or not line.get("doc"):
            continue
        invoice = Record.objects.filter(id=int(line["doc"]["id"]), record_type="invoice").first()
        if invoice is None:
            continue
        due = Decimal(str(invoice.data.get("amountRemaining", invoice.data.get("total", 0)))) + previous.get(line["doc"]["id"], Decimal(0))
        if Decimal(str(line.get("amount") or 0)) > due:
            raise RecordError(
                400,
                "INVALID_FLD_VALUE",
                f"You cannot apply {line.get('amount')} to invoice {invoice.data.get('tranId')}: its amount due is {due}.",
                f"apply.items[{i}].amount",
            )


def _refresh_invoice_balances(invoice_ids: set[str]) -> None:
    """amountRemaining and status of invoices after payments were applied to them."""
    for invoice_id in invoice_ids:
        invoice = Record.objects.select_for_update().filter(id=int(invoice_id), record_type="invoice").first()
        if invoice is None:
            continue
        paid = Decimal(0)
        for payment in Record.objects.filter(record_type="customerPayment", data__apply__items__contains=[{"doc": {"id": invoice_id}}]):
            for line in payment.data.get("apply", {}).get("items", []):
                if line.get("doc", {}).get("id") == invoice_id and line.get("apply", True):
                    paid += Decimal(str(line.get("amount") or 0))
        _set_invoice_balance(invoice.data, paid)
        invoice.last_modified = timezone.now()
        invoice.save(update_fields=["data", "last_modified"])


def _set_invoice_balance(data: dict, paid: Decimal) -> None:
    remaining = Decimal(str(data.get("total", 0))) - paid
    data["amountPaid"] = paid
    data["amountRemaining"] = remaining
    status = "B" if remaining <= 0 and Decimal(str(data.get("total", 0))) > 0 else "A"
    data["status"] = {"id": status, "refName": STATUSES["invoice"][status]}


def _failing(record_type: str, external_id: str | None, data: dict) -> RecordError | None:
    """The sandbox's fail_records: an external id, a tranId or an item's SKU on a line."""
    key = failing_record(SYSTEM, external_id or "", data.get("tranId") or "")
    if key:
        return invalid_value(key, "externalId" if key == external_id else "tranId")
    for i, line in enumerate((data.get("item") or {}).get("items", [])):
        item = Record.objects.filter(id=int(line["item"]["id"])).first() if line.get("item") else None
        sku = item.data.get("itemId") if item else None
        if sku and failing_record(SYSTEM, sku):
            return invalid_value(line["item"]["id"], f"item.items[{i}].item")
    return None


def _write(request: HttpRequest, record_type: str, *, body: dict, existing: Record | None, external_id: str | None) -> Record:
    spec = SPECS[record_type]
    replace = {name.strip() for name in request.GET.get("replace", "").split(",") if name.strip()}
    data = _build(record_type, spec, body, existing, replace)
    failure = _failing(record_type, external_id, data)
    if failure is not None:
        raise failure
    if record_type == "customerPayment":
        _check_application(data, existing)
    now = timezone.now()
    if existing is None:
        record = Record(record_type=record_type, external_id=external_id, data=data, created_at=now, last_modified=now)
        try:
            with transaction.atomic(using=DB):
                record.save()
        except IntegrityError as exc:
            raise RecordError(400, "DUP_RCRD", f"A record with the external ID {external_id} already exists.", "externalId") from exc
        if spec.tran_prefix and not record.data.get("tranId"):
            record.data["tranId"] = f"{spec.tran_prefix}{record.id}"
        if record_type == "invoice":
            _set_invoice_balance(record.data, Decimal(0))
        record.save(update_fields=["data"])
    else:
        record = existing
        if record_type == "invoice":
            _set_invoice_balance(data, Decimal(str(data.get("amountPaid", 0))))
        record.data, record.last_modified = data, now
        record.save(update_fields=["data", "last_modified"])
    if external_id:
        ledger, _ = ExternalIdLedger.objects.get_or_create(record_type=record_type, external_id=external_id)
        counter = "updates" if existing is not None else "creates"
        ExternalIdLedger.objects.filter(pk=ledger.pk).update(**{counter: F(counter) + 1})
    if record_type == "customerPayment":
        docs = {line["doc"]["id"] for line in data.get("apply", {}).get("items", []) if line.get("doc")}
        old = {line["doc"]["id"] for line in (existing.data if existing else {}).get("apply", {}).get("items", []) if line.get("doc")} if existing else set()
        _refresh_invoice_balances(docs | old)
    return record


# --- reading records ---------------------------------------------------------------------------
def _base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}/services/rest/record/v1"


def _record_url(request: HttpRequest, record_type: str, record_id) -> str:
    return f"{_base_url(request)}/{record_type}/{record_id}"


def _render_ref(request: HttpRequest, target: str, ref: dict) -> dict:
    target_type = "nonInventorySaleItem" if target == "item" else target
    if target == "item":
        target_type = Record.objects.filter(id=int(ref["id"])).values_list("record_type", flat=True).first() or target_type
    out = {"links": [{"rel": "self", "href": _record_url(request, target_type, ref["id"])}], "id": ref["id"]}
    name = _ref_name(target, ref["id"])
    if name is not None:
        out["refName"] = name
    return out


def render_record(request: HttpRequest, record: Record, *, expand: bool) -> dict:
    spec = SPECS[record.record_type]
    self_url = _record_url(request, record.record_type, record.id)
    out = {"links": [{"rel": "self", "href": self_url}], "id": str(record.id)}
    if record.external_id:
        out["externalId"] = record.external_id
    for key, value in record.data.items():
        if key in spec.refs and isinstance(value, dict):
            out[key] = _render_ref(request, spec.refs[key], value)
        elif key in spec.sublists:
            sub = spec.sublists[key]
            links = [{"rel": "self", "href": f"{self_url}/{key}"}]
            if not expand:
                out[key] = {"links": links}
                continue
            lines = []
            for line in (value or {}).get("items", []):
                rendered = {"links": []}
                for name, item_value in line.items():
                    rendered[name] = _render_ref(request, sub.refs[name], item_value) if name in sub.refs and isinstance(item_value, dict) else item_value
                lines.append(rendered)
            out[key] = {"links": links, "count": len(lines), "hasMore": False, "items": lines, "offset": 0, "totalResults": len(lines)}
        else:
            out[key] = value
    created_key = "dateCreated" if record.record_type == "customer" else "createdDate"
    out[created_key] = record.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out["lastModifiedDate"] = record.last_modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def _render_setup(request: HttpRequest, record_type: str, key: str) -> dict:
    if not key.isdigit():
        raise not_found()
    if record_type == "subsidiary":
        sub = Subsidiary.objects.filter(id=int(key)).first()
        if sub is None:
            raise not_found()
        return {
            "links": [{"rel": "self", "href": _record_url(request, "subsidiary", sub.id)}],
            "id": str(sub.id),
            "name": sub.name,
            "country": {"id": sub.country},
            "currency": _render_ref(request, "currency", {"id": str(sub.currency_id)}),
        }
    cur = Currency.objects.filter(id=int(key)).first()
    if cur is None:
        raise not_found()
    return {"links": [{"rel": "self", "href": _record_url(request, "currency", cur.id)}], "id": str(cur.id), "symbol": cur.symbol, "name": cur.name}


def _find(record_type: str, key: str, *, lock: bool = False) -> Record | None:
    qs = Record.objects.filter(record_type=record_type)
    if lock:
        qs = qs.select_for_update()
    if key.startswith("eid:"):
        return qs.filter(external_id=key[4:]).first()
    if not key.isdigit():
        return None
    return qs.filter(id=int(key)).first()


def _lock_external_id(record_type: str, external_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"netsuite-sandbox:{record_type}:{external_id}"])


def _body(request: HttpRequest) -> dict:
    try:
        body = wire.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(400, "INVALID_CONTENT", f"Error while accessing a resource. The request body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise RecordError(400, "INVALID_CONTENT", "Error while accessing a resource. The request body must be a JSON object.")
    return body


def _no_content(location: str | None = None) -> HttpResponse:
    response = HttpResponse(status=204)
    if location:
        response["Location"] = location
    return response


def _check_type(record_type: str) -> Spec:
    spec = SPECS.get(record_type)
    if spec is None:
        raise RecordError(404, "NONEXISTENT_ID", f"Record type '{record_type}' does not exist.")  # ASSUMPTION: code
    return spec


# --- views --------------------------------------------------------------------------------------
@endpoint
def record_collection(request: HttpRequest, record_type: str) -> HttpResponse:
    try:
        spec = _check_type(record_type)
        if request.method == "POST":
            if spec.readonly:
                raise RecordError(405, "INVALID_REQUEST", f"The {record_type} record cannot be created through this service.")
            body = _body(request)
            external_id = str(body["externalId"]) if body.get("externalId") else None
            with transaction.atomic(using=DB):
                if external_id:
                    _lock_external_id(record_type, external_id)
                    if Record.objects.filter(record_type=record_type, external_id=external_id).exists():
                        raise RecordError(400, "DUP_RCRD", f"A record with the external ID {external_id} already exists.", "externalId")
                record = _write(request, record_type, body=body, existing=None, external_id=external_id)
            return _no_content(_record_url(request, record_type, record.id))
        if request.method == "GET":
            return _list(request, record_type)
        raise RecordError(405, "INVALID_REQUEST", f"{request.method} is not allowed here.")
    except RecordError as exc:
        return exc.response()


def _list(request: HttpRequest, record_type: str) -> HttpResponse:
    limit, offset = _paging(request, default=1000)
    if record_type in ("subsidiary", "currency"):
        model = Subsidiary if record_type == "subsidiary" else Currency
        ids = list(model.objects.order_by("id").values_list("id", flat=True))
    else:
        ids = list(Record.objects.filter(record_type=record_type).order_by("id").values_list("id", flat=True))
    page = ids[offset : offset + limit]
    url = f"{_base_url(request)}/{record_type}"
    body = {
        "links": _page_links(url, limit, offset, len(ids)),
        "count": len(page),
        "hasMore": offset + len(page) < len(ids),
        "items": [{"links": [{"rel": "self", "href": f"{url}/{i}"}], "id": str(i)} for i in page],
        "offset": offset,
        "totalResults": len(ids),
    }
    return HttpResponse(wire.dumps(body), content_type="application/vnd.oracle.resource+json; type=collection")


@endpoint
def record_instance(request: HttpRequest, record_type: str, key: str) -> HttpResponse:
    try:
        spec = _check_type(record_type)
        if request.method == "GET":
            if record_type in ("subsidiary", "currency"):
                return HttpResponse(wire.dumps(_render_setup(request, record_type, key)), content_type=CONTENT_TYPE)
            record = _find(record_type, key)
            if record is None:
                raise not_found()
            expand = request.GET.get("expandSubResources", "").lower() == "true"
            return HttpResponse(wire.dumps(render_record(request, record, expand=expand)), content_type=CONTENT_TYPE)
        if spec.readonly:
            raise RecordError(405, "INVALID_REQUEST", f"The {record_type} record is read-only in this service.")
        if request.method == "PATCH":
            body = _body(request)
            with transaction.atomic(using=DB):
                record = _find(record_type, key, lock=True)
                if record is None:
                    raise not_found()
                _write(request, record_type, body=body, existing=record, external_id=record.external_id)
            return _no_content()
        if request.method == "PUT":
            if not key.startswith("eid:") or not key[4:]:
                # upsert works only with an external id (docs: "Upsert works only this way")
                raise RecordError(400, "INVALID_REQUEST", "Error while accessing a resource. PUT is supported only with an external ID (eid:<value>).")
            external_id = key[4:]
            if "|" in external_id:
                raise invalid_value(external_id, "externalId")
            body = _body(request)
            with transaction.atomic(using=DB):
                _lock_external_id(record_type, external_id)
                record = _find(record_type, key, lock=True)
                record = _write(request, record_type, body=body, existing=record, external_id=external_id)
            return _no_content(_record_url(request, record_type, record.id))
        if request.method == "DELETE":
            with transaction.atomic(using=DB):
                record = _find(record_type, key, lock=True)
                if record is None:
                    raise not_found()
                record.delete()
            return _no_content()
        raise RecordError(405, "INVALID_REQUEST", f"{request.method} is not allowed here.")
    except RecordError as exc:
        return exc.response()


# --- SuiteQL ------------------------------------------------------------------------------------
def _paging(request: HttpRequest, *, default: int) -> tuple[int, int]:
    try:
        limit = int(request.GET.get("limit", default))
        offset = int(request.GET.get("offset", 0))
    except ValueError as exc:
        raise RecordError(400, "INVALID_PARAMETER", "Invalid value for query parameter limit or offset.") from exc
    if not 1 <= limit <= MAX_SUITEQL_LIMIT:
        raise RecordError(400, "INVALID_PARAMETER", f"Invalid value for query parameter limit: {limit}. The value must be between 1 and {MAX_SUITEQL_LIMIT}.")
    if offset < 0:
        raise RecordError(400, "INVALID_PARAMETER", f"Invalid value for query parameter offset: {offset}.")
    return limit, offset


def _page_links(url: str, limit: int, offset: int, total: int) -> list[dict]:
    def href(at: int) -> str:
        return f"{url}?{urlencode({'limit': limit, 'offset': at})}"

    last = max(0, ((total - 1) // limit) * limit) if total else 0
    links = []
    if offset > 0:
        links.append({"rel": "previous", "href": href(max(0, offset - limit))})
        links.append({"rel": "first", "href": href(0)})
    if offset + limit < total:
        links.append({"rel": "next", "href": href(offset + limit)})
    links.append({"rel": "last", "href": href(last)})
    links.append({"rel": "self", "href": href(offset)})
    return links


@query_endpoint
def suiteql_view(request: HttpRequest) -> HttpResponse:
    try:
        if request.method != "POST":
            raise RecordError(405, "INVALID_REQUEST", "SuiteQL queries are sent with POST.")
        if "transient" not in request.headers.get("Prefer", "").lower():
            raise RecordError(400, "INVALID_HEADER", "Invalid value for header Prefer. SuiteQL requests require the header 'Prefer: transient'.")
        limit, offset = _paging(request, default=MAX_SUITEQL_LIMIT)
        body = _body(request)
        q = body.get("q")
        if not isinstance(q, str) or not q.strip():
            raise RecordError(400, "INVALID_PARAMETER", "Invalid search query. The request body must contain the query in 'q'.")
        try:
            rows, total = suiteql.run(q, limit=limit, offset=offset)
        except suiteql.QueryError as exc:
            raise RecordError(
                400, "INVALID_PARAMETER", f"Invalid search query. Detailed unprocessed description follows. Search error occurred: {exc}"
            ) from exc
        url = f"{request.scheme}://{request.get_host()}/services/rest/query/v1/suiteql"
        result = {
            "links": _page_links(url, limit, offset, total),
            "count": len(rows),
            "hasMore": offset + len(rows) < total,
            "items": rows,
            "offset": offset,
            "totalResults": total,
        }
        return HttpResponse(wire.dumps(result), content_type="application/vnd.oracle.resource+json; type=collection")
    except RecordError as exc:
        return exc.response()
