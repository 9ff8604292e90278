"""The sandbox org's data services: validated writes that record change events, and SOQL reads.

Every write goes through `create` / `update` / `upsert` / `delete` with a `Ctx` (who, through
which API, in which transaction), so REST requests, composite subrequests and the simulated UI
(`simulate.py`) produce the same records and the same Change Data Capture messages.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db.models import Q
from django.utils import timezone as dj_timezone

from sandboxes.kit.faults import failing_record

from . import schema, soql
from .models import ChangeEvent, Counter, OrgState, QueryCursor, SRecord

SYSTEM = "salesforce"
# [U] what Lightning Experience puts in changeOrigin; the point is that it is not our client id
UI_CHANGE_ORIGIN = "com/salesforce/api/rest/60.0;client=SfdcInternalAPI/"


class SFError(Exception):
    """A Salesforce REST error: status + [{message, errorCode, fields}]."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None, body=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.body = body

    def as_body(self):
        if self.body is not None:
            return self.body
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]


@dataclass
class Ctx:
    """Who writes, through which channel, in which transaction (one per REST request)."""

    user_id: str = schema.INTEGRATION_USER_ID
    change_origin: str = ""
    api_version: str = "60.0"
    api: bool = True  # API writes honour fail_records; the simulated UI does not
    transaction_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    sequence: int = 0
    commit_number: int = field(default_factory=lambda: time.time_ns() // 1000)
    batch_size: int | None = None  # from Sforce-Query-Options: batchSize=N

    @property
    def base(self) -> str:
        return f"/services/data/v{self.api_version}"


def api_ctx(*, api_version: str, user_id: str, call_options: str = "") -> Ctx:
    """Changes through REST carry `com/salesforce/api/rest/<ver>` and, if the caller set
    `Sforce-Call-Options: client=<id>`, `;client=<id>` (as documented for changeOrigin)."""
    origin = f"com/salesforce/api/rest/{api_version}"
    m = re.search(r"client=([^,;\s]+)", call_options or "")
    if m:
        origin += f";client={m.group(1)}"
    return Ctx(user_id=user_id, change_origin=origin, api_version=api_version)


def ui_ctx() -> Ctx:
    return Ctx(user_id=schema.REP_USER_ID, change_origin=UI_CHANGE_ORIGIN, api=False)


# --- value formats ---------------------------------------------------------------------------
def fmt_datetime(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_sf_datetime(value: str) -> datetime:
    return soql.parse_datetime(value)


def _number(value) -> Decimal:
    if isinstance(value, bool):
        raise InvalidOperation
    return Decimal(str(value).strip())


def coerce(obj: schema.SObject, f: schema.Field, value):
    """A JSON value for field f as stored, or SFError the way Salesforce words it."""
    if value is None or value == "" and f.type not in ("string", "textarea"):
        return None
    try:
        if f.type in ("currency", "double"):
            number = _number(value)
            if not number.is_finite():
                raise InvalidOperation
            return float(number) if number != number.to_integral() else (int(number) if f.type == "double" else float(number))
        if f.type == "int":
            number = _number(value)
            if number != number.to_integral():
                raise InvalidOperation
            return int(number)
        if f.type == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if f.type == "date":
            return date.fromisoformat(str(value)[:10]).isoformat() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)) else _bad_date(f, value)
        if f.type == "datetime":
            return fmt_datetime(parse_sf_datetime(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        kind = {"currency": "double", "double": "double", "int": "int", "boolean": "boolean", "date": "date", "datetime": "datetime"}[f.type]
        raise SFError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from VALUE_STRING value {value} or request may be missing a required field",
            [f.name],
        ) from None
    if not isinstance(value, str):
        value = str(value)
    if f.type == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise SFError(400, "INVALID_EMAIL_ADDRESS", f"{f.name}: invalid email address: {value}", [f.name])
    if f.type == "picklist" and f.restricted and value not in f.picklist:
        raise SFError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"{f.name}: bad value for restricted picklist field: {value}", [f.name])
    if f.type == "reference":
        full = schema.normalise_id(value)
        target = schema.sobject(f.reference_to)
        if full is None:
            raise SFError(400, "MALFORMED_ID", f"{f.name}: id value of incorrect type: {value}", [f.name])
        if target and not full.startswith(target.key_prefix):
            raise SFError(400, "FIELD_INTEGRITY_EXCEPTION", f"{f.name}: id value of incorrect type: {value}", [f.name])
        if target and target.name != "User" and not SRecord.objects.filter(pk=full, is_deleted=False).exists():
            raise SFError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        return full
    if len(value) > 255 and f.type != "textarea":
        raise SFError(400, "STRING_TOO_LONG", f"{f.name}: data value too large: {value[:40]}… (max length=255)", [f.name])
    return value


def _bad_date(f, value):
    raise ValueError(value)


# --- reads -----------------------------------------------------------------------------------
def sobject_or_404(name: str) -> schema.SObject:
    obj = schema.sobject(name)
    if obj is None:
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
    return obj


def get_record(obj: schema.SObject, record_id: str, *, include_deleted: bool = False) -> SRecord:
    full = schema.normalise_id(record_id)
    rec = SRecord.objects.filter(pk=full, sobject=obj.name).first() if full else None
    if rec is None:
        if full is None or not full.startswith(obj.key_prefix):
            raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
    if rec.is_deleted and not include_deleted:
        raise SFError(404, "ENTITY_IS_DELETED", "entity is deleted")
    return rec


def attributes(obj_name: str, record_id: str, ctx: Ctx) -> dict:
    return {"type": obj_name, "url": f"{ctx.base}/sobjects/{obj_name}/{record_id}"}


def render(rec: SRecord, ctx: Ctx, only: list[str] | None = None) -> dict:
    obj = schema.sobject(rec.sobject)
    names = [f.name for f in obj.fields] if not only else [obj.field(n).name for n in only if obj.field(n)]
    return {"attributes": attributes(obj.name, rec.id, ctx), **{n: rec.fields.get(n) for n in names}}


class Loader:
    """Parent records for relationship fields, cached for one request."""

    def __init__(self):
        self.cache: dict[str, SRecord | None] = {}

    def get(self, record_id: str | None) -> SRecord | None:
        if not record_id:
            return None
        if record_id not in self.cache:
            self.cache[record_id] = SRecord.objects.filter(pk=record_id).first()
        return self.cache[record_id]


def resolve_path(obj: schema.SObject, path: str) -> list[tuple[schema.SObject, schema.Field]]:
    """`Account.Owner.Name` → the chain of (object, field) it walks; SOQLError when unknown."""
    parts = path.split(".")
    chain, current = [], obj
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        f = current.field(part) if last else current.relationship(part)
        if f is None:
            if not last and current.field(part):
                raise soql.SOQLError(
                    f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name.",
                    "INVALID_FIELD",
                )
            raise soql.SOQLError(
                f"No such column '{part}' on entity '{current.name}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.",
                "INVALID_FIELD",
            )
        chain.append((current, f))
        if not last:
            current = schema.sobject(f.reference_to)
    return chain


def value_at(rec: SRecord, chain, loader: Loader):
    fields = rec.fields
    for i, (_obj, f) in enumerate(chain):
        if i == len(chain) - 1:
            return fields.get(f.name)
        parent = loader.get(fields.get(f.name))
        if parent is None:
            return None
        fields = parent.fields
    return None


def typed(f: schema.Field, value):
    if value is None:
        return None
    if f.type == "datetime":
        return parse_sf_datetime(value)
    if f.type == "date":
        return date.fromisoformat(value)
    if f.type in ("currency", "double", "int"):
        return Decimal(str(value))
    return value


def render_selected(rec: SRecord, fields: list[str], obj: schema.SObject, loader: Loader, ctx: Ctx) -> dict:
    out = {"attributes": attributes(obj.name, rec.id, ctx)}
    for path in fields:
        chain = resolve_path(obj, path)
        node, fields_here, record_here = out, rec.fields, rec
        for i, (_o, f) in enumerate(chain):
            if i == len(chain) - 1:
                node[f.name] = fields_here.get(f.name) if record_here is not None else None
                break
            rel = f.relationship
            parent = loader.get(fields_here.get(f.name))
            if parent is None:
                node[rel] = None
                break
            target = schema.sobject(f.reference_to)
            child = node.get(rel)
            if not isinstance(child, dict):
                child = node[rel] = {"attributes": attributes(target.name, parent.id, ctx)}
            node, fields_here, record_here = child, parent.fields, parent
    return out


def run_query(ctx: Ctx, text: str, *, include_deleted: bool = False, batch_size: int | None = None) -> dict:
    try:
        query = soql.parse(text)
    except soql.SOQLError as exc:
        raise SFError(400, exc.code, exc.message) from None
    obj = schema.sobject(query.sobject)
    if obj is None:
        raise SFError(
            400,
            "INVALID_TYPE",
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name.",
        )
    try:
        chains = {p: resolve_path(obj, p) for p in {*query.fields, *soql.field_names(query.where), *(o.field for o in query.order_by)}}
    except soql.SOQLError as exc:
        raise SFError(400, exc.code, exc.message) from None
    records = SRecord.objects.filter(sobject=obj.name)
    if not include_deleted:
        records = records.filter(is_deleted=False)
    records = _push_down(records, query.where, chains)
    loader = Loader()

    def getter(rec):
        return lambda path: typed(chains[path][-1][1], value_at(rec, chains[path], loader))

    matched = [rec for rec in records.order_by("created_at", "id") if soql.matches(query.where, getter(rec))]
    for item in reversed(query.order_by):
        nulls_last = item.nulls_last if item.nulls_last is not None else item.descending
        present = [r for r in matched if getter(r)(item.field) is not None]
        absent = [r for r in matched if getter(r)(item.field) is None]
        present.sort(key=lambda r: soql.sort_key(getter(r)(item.field)), reverse=item.descending)
        matched = present + absent if nulls_last else absent + present
    if query.offset:
        matched = matched[query.offset :]
    if query.limit is not None:
        matched = matched[: query.limit]
    if query.count_only:
        return {"totalSize": len(matched), "done": True, "records": []}
    for rec in matched:
        loader.cache[rec.id] = rec
    size = batch_size or OrgState.get().query_batch_size
    ids = [r.id for r in matched]
    page = [render_selected(r, query.fields, obj, loader, ctx) for r in matched[:size]]
    result = {"totalSize": len(ids), "done": len(ids) <= size, "records": page}
    if len(ids) > size:
        locator = schema.make_id("01g", Counter.next("query-locator"))
        QueryCursor.objects.create(locator=locator, sobject=obj.name, soql=text, record_ids=ids)
        result["nextRecordsUrl"] = f"{ctx.base}/query/{locator}-{size}"
    return result


def query_more(ctx: Ctx, token: str, *, batch_size: int | None = None) -> dict:
    m = re.fullmatch(r"([0-9A-Za-z]{15,18})-(\d+)", token)
    cursor = QueryCursor.objects.filter(locator=m.group(1)).first() if m else None
    if cursor is None:
        raise SFError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    query = soql.parse(cursor.soql)
    obj = schema.sobject(cursor.sobject)
    start = int(m.group(2))
    size = batch_size or OrgState.get().query_batch_size
    ids = cursor.record_ids[start : start + size]
    by_id = {r.id: r for r in SRecord.objects.filter(pk__in=ids)}
    loader = Loader()
    loader.cache.update(by_id)
    page = [render_selected(by_id[i], query.fields, obj, loader, ctx) for i in ids if i in by_id]
    end = start + len(ids)
    result = {"totalSize": len(cursor.record_ids), "done": end >= len(cursor.record_ids), "records": page}
    if not result["done"]:
        result["nextRecordsUrl"] = f"{ctx.base}/query/{cursor.locator}-{end}"
    return result


_MODSTAMP_FIELDS = {"systemmodstamp", "lastmodifieddate"}


def _push_down(records, where, chains):
    """Narrow the candidate rows in SQL for the selective filters the connector uses."""
    conditions = [where] if isinstance(where, soql.Condition) else (where.items if isinstance(where, soql.BoolOp) and where.op == "AND" else [])
    for cond in conditions:
        if not isinstance(cond, soql.Condition):
            continue
        chain = chains[cond.field]
        if len(chain) != 1:
            continue
        f = chain[0][1]
        if f.name.lower() in _MODSTAMP_FIELDS and cond.op in (">", ">=") and isinstance(cond.value, datetime):
            # LastModifiedDate <= SystemModstamp, so rows at or before the literal cannot match
            records = records.filter(modstamp__gte=cond.value - timedelta(milliseconds=1))
        elif f.type in ("id", "reference") and cond.op in ("=", "IN"):
            values = cond.value if cond.op == "IN" else [cond.value]
            ids = [schema.normalise_id(v) for v in values if isinstance(v, str)]
            ids = [i for i in ids if i]
            if f.type == "id":
                records = records.filter(pk__in=ids)
            else:
                match = Q(pk__in=[])
                for value in ids:
                    match |= field_eq(f.name, value)
                records = records.filter(match)
    return records


def find_by_field(obj: schema.SObject, f: schema.Field, value: str) -> list[SRecord]:
    if f.type == "id":
        full = schema.normalise_id(value)
        return list(SRecord.objects.filter(pk=full, sobject=obj.name, is_deleted=False)) if full else []
    return list(SRecord.objects.filter(field_eq(f.name, value), sobject=obj.name, is_deleted=False))


def field_eq(name: str, value) -> Q:
    """fields[name] == value (jsonb containment; `fields__Foo__c` would split on the `__`)."""
    return Q(fields__contains={name: value})


# --- writes ----------------------------------------------------------------------------------
def _schema_id(entity: str) -> str:
    return base64.urlsafe_b64encode(hashlib.md5(f"{entity}ChangeEvent-v60".encode()).digest()).decode().rstrip("=")[:22]


def _cdc_value(f: schema.Field | None, value):
    if f is not None and f.type == "datetime" and isinstance(value, str):
        return parse_sf_datetime(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{parse_sf_datetime(value).microsecond // 1000:03d}Z"
    return value


def record_change(ctx: Ctx, obj: schema.SObject, rec: SRecord, change_type: str, changed: dict, nulled: list[str], at: datetime) -> None:
    if not obj.change_events:
        return
    ctx.sequence += 1
    header = {
        "entityName": obj.name,
        "recordIds": [rec.id],
        "changeType": change_type,
        "changeOrigin": ctx.change_origin,
        "transactionKey": ctx.transaction_key,
        "sequenceNumber": ctx.sequence,
        "commitTimestamp": (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1),
        "commitNumber": ctx.commit_number,
        "commitUser": ctx.user_id,
        "changedFields": sorted(set(changed) | set(nulled)) if change_type == "UPDATE" else [],
        "nulledFields": sorted(nulled) if change_type == "UPDATE" else [],
        "diffFields": [],
    }
    body = {k: _cdc_value(obj.field(k), v) for k, v in changed.items() if k not in ("Id", "IsDeleted", "SystemModstamp") and v is not None}
    event = ChangeEvent.objects.create(entity_name=obj.name, change_type=change_type, record_ids=[rec.id], message={})
    event.message = {"schema": _schema_id(obj.name), "payload": {"ChangeEventHeader": header, **body}, "event": {"replayId": event.replay_id}}
    event.save(update_fields=["message"])


def _check_fail_records(ctx: Ctx, obj: schema.SObject, rec_fields: dict, data: dict, record_id: str = "") -> None:
    if not ctx.api:
        return
    candidates: list[tuple[str, str]] = []  # (key, field to name)
    first_field = next(iter(data), "Id")
    if record_id:
        candidates.append((record_id, first_field))
        candidates.append((record_id[:15], first_field))
    merged = {**rec_fields, **data}
    for f in obj.fields:
        if f.external_id and merged.get(f.name):
            candidates.append((str(merged[f.name]), f.name))
    if merged.get("Name"):
        candidates.append((str(merged["Name"]), "Name"))
    account_id = merged.get("AccountId") if obj.name != "Account" else None
    if account_id:
        account = SRecord.objects.filter(pk=account_id).first()
        if account and account.fields.get("Name"):
            candidates.append((account.fields["Name"], first_field))
    hit = failing_record(SYSTEM, *[k for k, _ in candidates])
    if hit:
        field_name = next(f for k, f in candidates if k == hit)
        raise SFError(
            400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", f"{field_name}: record {hit} is blocked by a validation rule (sandbox fail_records)", [field_name]
        )


def _resolve_lookups(obj: schema.SObject, data: dict) -> dict:
    """`"Account": {"External_Id__c": "A-1"}` → `"AccountId": "001…"` [U: lookup by external id]."""
    out = {}
    for key, value in data.items():
        if key == "attributes":
            continue
        rel = obj.relationship(key) if isinstance(value, dict) else None
        if rel is not None:
            target = schema.sobject(rel.reference_to)
            pairs = [(k, v) for k, v in value.items() if k != "attributes"]
            if len(pairs) != 1 or target.field(pairs[0][0]) is None or not target.field(pairs[0][0]).external_id:
                raise SFError(400, "INVALID_FIELD", f"Cannot reference {key} by these fields", [key])
            found = find_by_field(target, target.field(pairs[0][0]), str(pairs[0][1]))
            if len(found) != 1:
                raise SFError(
                    400, "INVALID_FIELD", f"Foreign key external ID: {pairs[0][1]} not found for field {pairs[0][0]} in entity {target.name}", [rel.name]
                )
            out[rel.name] = found[0].id
        else:
            out[key] = value
    return out


def _validated(obj: schema.SObject, data: dict, *, creating: bool) -> dict:
    data = _resolve_lookups(obj, data)
    clean = {}
    readonly = []
    for key, value in data.items():
        f = obj.field(key)
        if f is None:
            raise SFError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")
        if f.name == "Id":
            continue
        if not (f.createable if creating else f.updateable):
            readonly.append(f.name)
            continue
        clean[f.name] = coerce(obj, f, value)
    if readonly:
        raise SFError(
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(readonly)}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
            readonly,
        )
    return clean


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def _derive(ctx: Ctx, obj: schema.SObject, fields: dict, creating: bool) -> None:
    name = obj.name
    if name == "Opportunity":
        stage = fields.get("StageName")
        fields["IsWon"] = stage == "Closed Won"
        fields["IsClosed"] = stage in ("Closed Won", "Closed Lost")
    elif name in ("OpportunityLineItem", "OrderItem"):
        if name == "OpportunityLineItem":
            product = SRecord.objects.filter(pk=fields.get("Product2Id")).first()
            fields["ProductCode"] = product.fields.get("ProductCode") if product else None
        qty, price = fields.get("Quantity"), fields.get("UnitPrice")
        if qty is not None and price is not None:
            fields["TotalPrice"] = float((Decimal(str(qty)) * Decimal(str(price))).quantize(Decimal("0.01")))
        if creating and name == "OrderItem":
            fields["OrderItemNumber"] = f"{Counter.next('OrderItemNumber', 1):010d}"
    elif name == "Order":
        fields["StatusCode"] = fields.get("Status") or "Draft"
        if creating:
            fields["OrderNumber"] = f"{Counter.next('OrderNumber', 100):08d}"
            fields.setdefault("TotalAmount", 0.0)
    elif name == "Contract":
        if creating:
            fields["ContractNumber"] = f"{Counter.next('ContractNumber', 100):08d}"
        start, term = fields.get("StartDate"), fields.get("ContractTerm")
        fields["EndDate"] = (_add_months(date.fromisoformat(start), int(term)) - timedelta(days=1)).isoformat() if start and term else None


def _rollup(ctx: Ctx, obj: schema.SObject, fields: dict) -> None:
    """Roll-up summaries: Opportunity.Amount from its lines, Order.TotalAmount from its items."""
    parent_field, total_field = {"OpportunityLineItem": ("OpportunityId", "Amount"), "OrderItem": ("OrderId", "TotalAmount")}.get(obj.name, (None, None))
    if not parent_field or not fields.get(parent_field):
        return
    parent = SRecord.objects.select_for_update().filter(pk=fields[parent_field]).first()
    if parent is None:
        return
    total = sum(
        (Decimal(str(r.fields.get("TotalPrice") or 0)) for r in SRecord.objects.filter(field_eq(parent_field, parent.id), sobject=obj.name, is_deleted=False)),
        Decimal("0"),
    )
    total = float(total.quantize(Decimal("0.01")))
    if parent.fields.get(total_field) != total:
        _apply(ctx, schema.sobject(parent.sobject), parent, {total_field: total}, creating=False)


def _apply(ctx: Ctx, obj: schema.SObject, rec: SRecord, changes: dict, *, creating: bool) -> SRecord:
    now = dj_timezone.now()
    before = dict(rec.fields)
    fields = {**before, **changes}
    _derive(ctx, obj, fields, creating)
    stamp = fmt_datetime(now)
    fields.update({"LastModifiedDate": stamp, "LastModifiedById": ctx.user_id, "SystemModstamp": stamp})
    if creating:
        fields.update({"Id": rec.id, "IsDeleted": False, "CreatedDate": stamp, "CreatedById": ctx.user_id})
        if obj.field("OwnerId") and not fields.get("OwnerId"):
            fields["OwnerId"] = ctx.user_id
        for f in obj.fields:
            fields.setdefault(f.name, f.default)
        rec.created_at = now
    rec.fields = fields
    rec.modstamp = now
    rec.save()
    if creating:
        record_change(ctx, obj, rec, "CREATE", {k: v for k, v in fields.items() if v is not None}, [], now)
    else:
        changed = {k: v for k, v in fields.items() if before.get(k) != v and v is not None and k not in ("SystemModstamp", "LastModifiedById")}
        nulled = [k for k, v in fields.items() if v is None and before.get(k) is not None]
        if set(changed) - {"LastModifiedDate"} or nulled:
            record_change(ctx, obj, rec, "UPDATE", changed, nulled, now)
    _rollup(ctx, obj, fields)
    return rec


def create(ctx: Ctx, obj: schema.SObject, data: dict) -> SRecord:
    clean = _validated(obj, data, creating=True)
    for f in obj.fields:
        if f.default is not None and clean.get(f.name) is None:
            clean[f.name] = f.default
    missing = [f.name for f in obj.fields if f.required and clean.get(f.name) in (None, "")]
    if missing:
        raise SFError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
    _check_fail_records(ctx, obj, {}, clean)
    _check_rules(obj, None, clean)
    rec = SRecord(id=schema.make_id(obj.key_prefix, Counter.next(f"id-{obj.key_prefix}")), sobject=obj.name, fields={})
    return _apply(ctx, obj, rec, clean, creating=True)


def update(ctx: Ctx, obj: schema.SObject, rec: SRecord, data: dict) -> SRecord:
    clean = _validated(obj, data, creating=False)
    missing = [f.name for f in obj.fields if f.required and f.name in clean and clean[f.name] in (None, "")]
    if missing:
        raise SFError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
    _check_fail_records(ctx, obj, rec.fields, clean, rec.id)
    _check_rules(obj, rec, clean)
    rec = SRecord.objects.select_for_update().get(pk=rec.pk)
    return _apply(ctx, obj, rec, clean, creating=False)


def _check_rules(obj: schema.SObject, rec: SRecord | None, clean: dict) -> None:
    if obj.name == "Order" and clean.get("Status") == "Activated" and (rec is None or rec.fields.get("Status") != "Activated"):
        has_items = rec is not None and SRecord.objects.filter(field_eq("OrderId", rec.id), sobject="OrderItem", is_deleted=False).exists()
        if not has_items:
            # [U] wording; Salesforce refuses to activate an order without products
            raise SFError(400, "FIELD_INTEGRITY_EXCEPTION", "You can't activate an order that has no order products.", ["Status"])


def upsert(ctx: Ctx, obj: schema.SObject, field_name: str, value: str, data: dict, *, update_only: bool = False) -> tuple[SRecord, bool]:
    f = obj.field(field_name)
    if f is None or not (f.external_id or f.type == "id"):
        raise SFError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field_name}")
    body_value = next((v for k, v in data.items() if k.lower() == f.name.lower()), None)
    if body_value is not None and str(body_value) != value:
        raise SFError(
            400, "INVALID_FIELD", f"The value of the external ID field in the URL ({value}) does not match the value in the body ({body_value})", [f.name]
        )
    found = find_by_field(obj, f, value)
    if len(found) > 1:
        raise SFError(
            300, "MULTIPLE_CHOICES", "more than one record found for external id field", body=[f"{ctx.base}/sobjects/{obj.name}/{r.id}" for r in found]
        )
    if found:
        return update(ctx, obj, found[0], data), False
    if update_only or f.type == "id":
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
    return create(ctx, obj, {**data, f.name: value}), True


def delete(ctx: Ctx, obj: schema.SObject, rec: SRecord) -> None:
    _check_fail_records(ctx, obj, rec.fields, {}, rec.id)
    now = dj_timezone.now()
    rec.is_deleted = True
    rec.fields = {**rec.fields, "IsDeleted": True, "SystemModstamp": fmt_datetime(now)}
    rec.modstamp = now
    rec.save()
    record_change(ctx, obj, rec, "DELETE", {}, [], now)
    _rollup(ctx, obj, rec.fields)
