"""What the Business Central sandbox does with a write: validate it as BC's API pages do, derive
what BC fills in (numbers, customer names, line amounts, document totals), and post.

Posting (bound action `Microsoft.NAV.post`):
- a sales invoice: Draft → Open with a posted number (PS-INV…), remainingAmount = its total,
  G/L entries (receivables / revenue), the customer's balance up; it can no longer be changed;
- a sales credit memo: likewise (PS-CR…), applied to its invoice when it names one;
- a customer payment journal: every line (customerPayments) becomes G/L entries (bank /
  receivables) under its document number, is applied to its invoice (remainingAmount down,
  status Paid at zero) and leaves the journal; the journal is empty afterwards.

ASSUMPTIONS where the documentation is silent (marked [U]): a payment line applied to an
invoice must have a negative amount (a credit to the customer, as the journal's Credit Amount
makes it); an overpayment is applied up to what the invoice owes, the rest stays open on the
customer; a posted document refuses PATCH/DELETE with Application_DialogException "The
invoice has been posted and can no longer be modified."; tax is not calculated (no tax setup:
totalTaxAmount 0) — billing's tax arrives as a line on the SALES-TAX item.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils import timezone

from sandboxes.kit.faults import failing_record

from . import specs, webhooks
from .errors import BCError
from .models import Company, Entity, NumberSeries
from .specs import BLANK_DATE, NULL_GUID, F, Spec

SYSTEM = "business_central"
CENT = Decimal("0.01")
JOURNAL_TEMPLATE = "CASHRCPT"
RECEIVABLES_ACCOUNT, REVENUE_ACCOUNT, BANK_ACCOUNT = "13100", "40100", "10100"
POSTED = frozenset({"Open", "Paid", "Canceled", "Corrective"})
SERIES = {  # No. Series: prefix, first number, digits
    "CUST": ("C", 10, 5),
    "S-ORD": ("S-ORD", 101001, 6),
    "S-INV": ("S-INV", 102001, 6),
    "PS-INV": ("PS-INV", 103001, 6),
    "S-CR": ("S-CR", 104001, 6),
    "PS-CR": ("PS-CR", 104001, 6),
    "GJNL-PMT": ("G", 1, 5),
    "GL": ("", 1, 0),
}
DRAFT_SERIES = {"salesOrders": "S-ORD", "salesInvoices": "S-INV", "salesCreditMemos": "S-CR"}


# --- small helpers -------------------------------------------------------------------------------
def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def etag(version: int, guid) -> str:
    token = base64.b64encode(f"'{version};{uuid.UUID(str(guid)).int % 10**20};00;'".encode()).decode()
    return f'W/"{token}"'


def money(value) -> Decimal:
    return Decimal(str(value if value not in (None, "") else 0)).quantize(CENT, ROUND_HALF_UP)


def today() -> str:
    return timezone.now().date().isoformat()


def next_number(company: Company, series: str) -> str:
    prefix, first, digits = SERIES[series]
    row, _ = NumberSeries.objects.select_for_update().get_or_create(company=company, code=series, defaults={"last_number": first - 1})
    row.last_number += 1
    row.save(update_fields=["last_number"])
    return f"{prefix}{row.last_number:0{digits}d}" if digits else str(row.last_number)


def render(entity: Entity, spec: Spec, *, select: list[str] | None = None, expand: dict[str, list[dict]] | None = None) -> dict:
    out = {"@odata.etag": etag(entity.version, entity.guid), "id": str(entity.guid)}
    for name, f in spec.fields:
        if select and name not in select:
            continue
        value = entity.data.get(name, specs.blank(f))
        out[name] = value if value is not None else specs.blank(f)
    for name, lines in (expand or {}).items():
        out[name] = lines
    return out


def find(company: Company, entity_set: str, guid: str, *, lock: bool = False) -> Entity | None:
    try:
        key = uuid.UUID(str(guid))
    except ValueError:
        return None
    qs = Entity.objects.filter(company=company, entity_set=entity_set, guid=key)
    return (qs.select_for_update() if lock else qs).first()


def find_by(company: Company, entity_set: str, field: str, value: str) -> Entity | None:
    return Entity.objects.filter(company=company, entity_set=entity_set, **{f"data__{field}": value}).order_by("id").first()


def not_found(spec: Spec, key: str) -> BCError:
    return BCError(404, "BadRequest_NotFound", f"The {spec.table} does not exist. Identification fields and values: Id='{{{str(key).upper()}}}'")


# --- field values ------------------------------------------------------------------------------------
def coerce(spec: Spec, name: str, value, *, creating: bool):
    f: F | None = spec.field_map.get(name)
    if f is None:
        raise BCError(
            400,
            "BadRequest_InvalidRequestUrl",
            f"The property '{name}' does not exist on type 'Microsoft.NAV.{spec.type_name}'. Make sure to only use property names that are defined by the type.",
        )
    if not f.writable:
        raise BCError(400, "BadRequest_InvalidOperation", f"Control '{name}' is read-only")
    if value is None:
        return specs.blank(f)
    kind = f.kind
    if kind in ("text", "code"):
        if not isinstance(value, str):
            raise BCError(400, "Application_EvaluateException", f'The value "{value}" can\'t be evaluated into type Text.')
        if len(value) > f.length:
            raise BCError(
                400,
                "Application_StringExceededLength",
                f"The length of the string is {len(value)}, but it must be less than or equal to {f.length} characters. Value: {value}",
            )
        return value.upper() if kind == "code" else value
    if kind == "guid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise BCError(
                400,
                "Application_Invalid_GUID",
                "Invalid format of GUID string. The correct format of the GUID string is: CDEF7890-ABCD-0123-1234-567890ABCDEF where 0-9, A-F symbolizes hexadecimal digits.",
            ) from None
    if kind == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise BCError(400, "BadRequest_InvalidRequestUrl", f"Cannot convert the literal '{value}' to the expected type 'Edm.Date'.") from None
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, float)):
            raise BCError(400, "BadRequest_InvalidRequestUrl", f"Cannot convert the literal '{value}' to the expected type 'Edm.Decimal'.")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise BCError(400, "BadRequest_InvalidRequestUrl", f"Cannot convert the literal '{value}' to the expected type 'Edm.Decimal'.") from None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise BCError(400, "BadRequest_InvalidRequestUrl", f"Cannot convert the literal '{value}' to the expected type 'Edm.Int32'.")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise BCError(400, "BadRequest_InvalidRequestUrl", f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean'.")
        return value
    if kind == "enum":
        if value not in f.choices:
            raise BCError(400, "Application_EvaluateException", f'The value "{value}" can\'t be evaluated into type Option.')
        return value
    return value


def apply_body(spec: Spec, data: dict, body: dict, *, creating: bool) -> set[str]:
    """Write the body's fields into `data`; returns the names written."""
    written = set()
    for name, value in body.items():
        if name.startswith("@odata.") or name in ("id", "lastModifiedDateTime") or name == spec.lines or (name == spec.parent_key and spec.parent_key):
            continue
        data[name] = coerce(spec, name, value, creating=creating)
        written.add(name)
    return written


def check_failing(*keys: str, field: str) -> None:
    key = failing_record(SYSTEM, *keys)
    if key:
        raise BCError(400, "Application_FieldValidationException", f"{field} {key} is not valid in this company (sandbox fail_records).")


def touch(entity: Entity, now: datetime | None = None) -> None:
    now = now or timezone.now()
    entity.last_modified = now
    entity.data["lastModifiedDateTime"] = iso(now)
    if entity.pk:
        entity.version += 1


def create_entity(company: Company, spec: Spec, data: dict, *, parent: Entity | None = None, guid: str | None = None) -> Entity:
    now = timezone.now()
    entity = Entity(company=company, entity_set=spec.name, parent=parent, data=data, created_at=now, last_modified=now)
    if guid:
        try:
            entity.guid = uuid.UUID(str(guid))
        except ValueError:
            raise BCError(400, "Application_Invalid_GUID", "Invalid format of GUID string.") from None
        if Entity.objects.filter(guid=entity.guid).exists():
            raise BCError(409, "Internal_EntityWithSameKeyExists", f"The {spec.table} already exists. Identification fields and values: Id='{{{guid}}}'")
    touch(entity, now)
    entity.save()
    return entity


def save(entity: Entity) -> None:
    touch(entity)
    entity.save(update_fields=["data", "version", "last_modified"])


def changed(entity: Entity, change_type: str) -> None:
    """Tell the webhook subscriptions; a line's change is its document's."""
    target = entity.parent if entity.entity_set in specs.LINE_SETS and entity.parent_id else entity
    kind = change_type if target is entity else "updated"
    webhooks.record_change(target.company, target.entity_set, str(target.guid), kind, target.last_modified)


# --- customers --------------------------------------------------------------------------------------
def write_customer(company: Company, body: dict, existing: Entity | None, *, guid: str | None = None) -> Entity:
    spec = specs.CUSTOMERS
    data = dict(existing.data) if existing else {"type": "Company", "blocked": " ", "balanceDue": Decimal(0), "creditLimit": Decimal(0), "taxLiable": False}
    written = apply_body(spec, data, body, creating=existing is None)
    if not data.get("number"):
        data["number"] = next_number(company, "CUST")
    check_failing(data["number"], data.get("taxRegistrationNumber") or "", field="Customer")
    if "number" in written or existing is None:
        clash = Entity.objects.filter(company=company, entity_set="customers", data__number=data["number"]).exclude(pk=getattr(existing, "pk", None)).exists()
        if clash:
            raise BCError(409, "Internal_EntityWithSameKeyExists", f"The Customer already exists. Identification fields and values: No.='{data['number']}'")
    if "currencyCode" in written or "currencyId" in written:
        currency_of(company, data, table="Customer")
    if existing is None:
        entity = create_entity(company, spec, data, guid=guid)
        changed(entity, "created")
        return entity
    existing.data = data
    save(existing)
    changed(existing, "updated")
    return existing


def currency_of(company: Company, data: dict, *, table: str) -> None:
    """Validate currencyCode / currencyId against the company's currencies (its local currency: blank
    or its code) and keep the two in step."""
    code = (data.get("currencyCode") or "").upper()
    if data.get("currencyId") not in (None, "", NULL_GUID) and not code:
        currency = find(company, "currencies", data["currencyId"])
        if currency is None:
            raise BCError(400, "Internal_RecordNotFound", f"The Currency does not exist. Identification fields and values: Id='{{{data['currencyId']}}}'")
        code = currency.data["code"]
    if code in ("", company.lcy_code):
        data["currencyCode"], data["currencyId"] = (code or ""), NULL_GUID
        return
    currency = find_by(company, "currencies", "code", code)
    if currency is None:
        raise BCError(
            400,
            "Internal_InvalidTableRelation",
            f"The field Currency Code of table {table} contains a value ({code}) that cannot be found in the related table (Currency).",
        )
    data["currencyCode"], data["currencyId"] = code, str(currency.guid)


# --- documents and their lines -------------------------------------------------------------------------
def resolve_customer(company: Company, data: dict, written: set[str]) -> Entity:
    customer = None
    if data.get("customerId") not in (None, "", NULL_GUID):
        customer = find(company, "customers", data["customerId"])
        if customer is None:
            raise BCError(400, "Application_DialogException", 'The "customerId" does not match to a Customer.')
        if "customerNumber" in written and data.get("customerNumber") and data["customerNumber"] != customer.data["number"]:
            raise BCError(400, "Application_DialogException", "The customer values do not match to a specific Customer.")
    elif data.get("customerNumber"):
        customer = find_by(company, "customers", "number", data["customerNumber"])
        if customer is None:
            raise BCError(400, "Application_DialogException", 'The "customerNumber" does not match to a Customer.')
    if customer is None:
        raise BCError(400, "Application_DialogException", "A customerNumber or a customerID must be provided.")
    data["customerId"], data["customerNumber"], data["customerName"] = str(customer.guid), customer.data["number"], customer.data.get("displayName", "")
    if "billToCustomerId" not in written and "billToCustomerNumber" not in written:
        data["billToCustomerId"], data["billToCustomerNumber"] = str(customer.guid), customer.data["number"]
        data.setdefault("billToName", customer.data.get("displayName", ""))
    return customer


def mutable(document: Entity) -> None:
    if document.data.get("status") in POSTED:
        noun = {"salesInvoices": "invoice", "salesCreditMemos": "credit memo"}.get(document.entity_set, "document")
        raise BCError(400, "Application_DialogException", f"The {noun} has been posted and can no longer be modified.")


def write_document(company: Company, spec: Spec, body: dict, existing: Entity | None, *, guid: str | None = None) -> Entity:
    lines = body.get(spec.lines) if spec.lines else None
    if lines is not None and (existing is not None or not isinstance(lines, list)):
        raise BCError(400, "BadRequest_InvalidRequestUrl", f"Deep insert of {spec.lines} is supported only when creating a {spec.type_name}, as a list.")
    if existing is not None:
        mutable(existing)
    data = dict(existing.data) if existing else {"status": "Draft", "discountAmount": Decimal(0), "pricesIncludeTax": False}
    written = apply_body(spec, data, body, creating=existing is None)
    if existing is None or written & {"customerId", "customerNumber"}:
        customer = resolve_customer(company, data, written)
        if existing is None and "currencyCode" not in written and "currencyId" not in written:
            data["currencyCode"] = customer.data.get("currencyCode") or ""
    check_failing(data.get("externalDocumentNumber") or "", field="External Document No.")
    currency_of(company, data, table="Sales Header")
    if not data.get("currencyCode"):
        data["currencyCode"] = company.lcy_code  # the API answers a document in local currency with its code
    if spec.name == "salesCreditMemos" and written & {"invoiceId", "invoiceNumber"}:
        link_invoice(company, data)
    if existing is None:
        data["number"] = next_number(company, DRAFT_SERIES[spec.name])
        document = create_entity(company, spec, data, guid=guid)
        for raw in lines or []:
            if not isinstance(raw, dict):
                raise BCError(400, "BadRequest_InvalidRequestUrl", f"Each of {spec.lines} must be an object.")
            write_line(company, specs.SPECS[spec.lines], document, raw, None, refresh=False)
        recalc(document)
        changed(document, "created")
        return document
    existing.data = data
    recalc(existing)
    changed(existing, "updated")
    return existing


def link_invoice(company: Company, data: dict) -> None:
    invoice = None
    if data.get("invoiceId") not in (None, "", NULL_GUID):
        invoice = find(company, "salesInvoices", data["invoiceId"])
    elif data.get("invoiceNumber"):
        invoice = find_by(company, "salesInvoices", "number", data["invoiceNumber"])
    if invoice is None or invoice.data.get("status") not in POSTED:
        if data.get("invoiceId") in (None, "", NULL_GUID) and not data.get("invoiceNumber"):
            data["invoiceId"], data["invoiceNumber"] = NULL_GUID, ""
            return
        raise BCError(400, "Application_DialogException", 'The "invoiceId" should be the ID of a posted sales invoice.')
    data["invoiceId"], data["invoiceNumber"] = str(invoice.guid), invoice.data["number"]


def write_line(company: Company, spec: Spec, document: Entity, body: dict, existing: Entity | None, *, refresh: bool = True) -> Entity:
    mutable(document)
    data = dict(existing.data) if existing else {"discountAmount": Decimal(0), "discountPercent": Decimal(0), "quantity": Decimal(0)}
    written = apply_body(spec, data, body, creating=existing is None)
    data["documentId"] = str(document.guid)
    if not data.get("sequence"):
        numbers = [line.data.get("sequence") or 0 for line in Entity.objects.filter(parent=document, entity_set=spec.name)]
        data["sequence"] = max(numbers + [0]) + 10000
    if not data.get("lineType"):
        data["lineType"] = "Item" if data.get("lineObjectNumber") or data.get("itemId") not in (None, "", NULL_GUID) else "Comment"
    if data["lineType"] == "Item" and (existing is None or written & {"lineObjectNumber", "itemId", "lineType"}):
        item = None
        if data.get("itemId") not in (None, "", NULL_GUID) and "lineObjectNumber" not in written:
            item = find(company, "items", data["itemId"])
        elif data.get("lineObjectNumber"):
            item = find_by(company, "items", "number", data["lineObjectNumber"])
        if item is None:
            raise BCError(
                400,
                "Internal_InvalidTableRelation",
                f"The field No. of table Sales Line contains a value ({data.get('lineObjectNumber') or data.get('itemId')}) that cannot be found in the related table (Item).",
            )
        if item.data.get("blocked"):
            raise BCError(
                400, "Application_FieldValidationException", f"Blocked must be equal to 'No' in Item: No.={item.data['number']}. Current value is 'Yes'."
            )
        check_failing(item.data["number"], field="Item")
        data["itemId"], data["lineObjectNumber"] = str(item.guid), item.data["number"]
        if "description" not in written:
            data["description"] = item.data.get("displayName", "")
        if "unitPrice" not in written and existing is None:
            data["unitPrice"] = item.data.get("unitPrice", Decimal(0))
        if "unitOfMeasureCode" not in written:
            data["unitOfMeasureCode"] = item.data.get("baseUnitOfMeasureCode", "")
    quantity = Decimal(str(data.get("quantity") or 0))
    price = Decimal(str(data.get("unitPrice") or 0))
    gross = (quantity * price).quantize(CENT, ROUND_HALF_UP)
    if "discountPercent" in written and "discountAmount" not in written:
        data["discountAmount"] = (gross * Decimal(str(data["discountPercent"])) / 100).quantize(CENT, ROUND_HALF_UP)
    discount = money(data.get("discountAmount"))
    if discount > gross and gross >= 0:
        raise BCError(400, "Application_FieldValidationException", f"Line Discount Amount must not be greater than {gross} in Sales Line.")
    data["discountPercent"] = (discount / gross * 100).quantize(Decimal("0.00001"), ROUND_HALF_UP) if gross else Decimal(0)
    amount = gross - discount
    data.update(
        {
            "amountExcludingTax": amount,
            "taxPercent": Decimal(0),
            "totalTaxAmount": Decimal(0),
            "amountIncludingTax": amount,
            "netAmount": amount,
            "netTaxAmount": Decimal(0),
            "netAmountIncludingTax": amount,
            "invoiceDiscountAllocation": Decimal(0),
            "discountAppliedBeforeTax": True,
        }
    )
    if spec.name == "salesOrderLines":
        data.setdefault("shippedQuantity", Decimal(0))
        data.setdefault("invoicedQuantity", Decimal(0))
        if "shipQuantity" not in written:
            data["shipQuantity"] = quantity
        if "invoiceQuantity" not in written:
            data["invoiceQuantity"] = quantity
    if existing is None:
        line = create_entity(company, spec, data, parent=document)
    else:
        existing.data = data
        save(existing)
        line = existing
    if refresh:
        recalc(document)
        changed(document, "updated")
    return line


def recalc(document: Entity) -> None:
    """Document totals from its lines (no tax: see the module docstring); a new ETag."""
    lines_set = specs.SPECS[document.entity_set].lines
    total = sum((money(line.data.get("amountExcludingTax")) for line in Entity.objects.filter(parent=document, entity_set=lines_set)), Decimal(0))
    total -= money(document.data.get("discountAmount"))
    document.data.update({"totalAmountExcludingTax": total, "totalTaxAmount": Decimal(0), "totalAmountIncludingTax": total, "discountAppliedBeforeTax": True})
    if document.entity_set == "salesInvoices" and document.data.get("status") not in POSTED:
        document.data["remainingAmount"] = total
    if document.entity_set == "salesOrders":
        document.data.setdefault("fullyShipped", False)
    save(document)


def delete_entity(entity: Entity) -> None:
    if entity.entity_set in specs.LINE_SETS and entity.parent_id and entity.entity_set != "customerPayments":
        document = Entity.objects.select_for_update().get(pk=entity.parent_id)
        mutable(document)
        entity.delete()
        recalc(document)
        changed(document, "updated")
        return
    if entity.entity_set in ("salesInvoices", "salesCreditMemos"):
        mutable(entity)
    if entity.entity_set == "customers" and Entity.objects.filter(company=entity.company, data__customerId=str(entity.guid)).exists():
        raise BCError(
            400,
            "Application_DialogException",
            f"You cannot delete Customer {entity.data.get('number')} because there is at least one outstanding document for this customer.",
        )
    parent = entity.parent if entity.entity_set == "customerPayments" else None
    webhooks.record_change(
        entity.company,
        entity.entity_set if parent is None else parent.entity_set,
        str((parent or entity).guid),
        "deleted" if parent is None else "updated",
        timezone.now(),
    )
    entity.delete()
    if parent is not None:
        save(parent)


# --- customer payment journals ------------------------------------------------------------------------
def write_journal(company: Company, body: dict, existing: Entity | None, *, guid: str | None = None) -> Entity:
    spec = specs.JOURNALS
    data = dict(existing.data) if existing else {"balancingAccountNumber": BANK_ACCOUNT}
    apply_body(spec, data, body, creating=existing is None)
    if not data.get("code"):
        raise BCError(
            400,
            "Application_FieldValidationException",
            "Name must have a value in Gen. Journal Batch: Journal Template Name=CASHRCPT, Name=. It cannot be zero or empty.",
        )
    clash = Entity.objects.filter(company=company, entity_set=spec.name, data__code=data["code"]).exclude(pk=getattr(existing, "pk", None)).exists()
    if clash:
        raise BCError(
            409,
            "Internal_EntityWithSameKeyExists",
            f"The Gen. Journal Batch already exists. Identification fields and values: Journal Template Name='{JOURNAL_TEMPLATE}',Name='{data['code']}'",
        )
    data.setdefault("displayName", data["code"])
    if existing is None:
        entity = create_entity(company, spec, data, guid=guid)
        changed(entity, "created")
        return entity
    existing.data = data
    save(existing)
    changed(existing, "updated")
    return existing


def write_payment(company: Company, journal: Entity, body: dict, existing: Entity | None) -> Entity:
    spec = specs.CUSTOMER_PAYMENTS
    data = dict(existing.data) if existing else {"amount": Decimal(0)}
    written = apply_body(spec, data, body, creating=existing is None)
    data["journalId"], data["journalDisplayName"] = str(journal.guid), journal.data["code"]
    if not data.get("lineNumber"):
        numbers = [line.data.get("lineNumber") or 0 for line in Entity.objects.filter(parent=journal, entity_set=spec.name)]
        data["lineNumber"] = max(numbers + [0]) + 10000
    if written & {"appliesToInvoiceId", "appliesToInvoiceNumber"} or existing is None:
        invoice = None
        if data.get("appliesToInvoiceId") not in (None, "", NULL_GUID):
            invoice = find(company, "salesInvoices", data["appliesToInvoiceId"])
            if invoice is None or invoice.data.get("status") not in POSTED:
                raise BCError(
                    400, "Application_DialogException", 'The "appliesToInvoiceId" should be the ID of an Open, Paid, Corrective, or Canceled Invoice.'
                )
        elif data.get("appliesToInvoiceNumber"):
            invoice = find_by(company, "salesInvoices", "number", data["appliesToInvoiceNumber"])
        if invoice is not None:
            data["appliesToInvoiceId"], data["appliesToInvoiceNumber"] = str(invoice.guid), invoice.data["number"]
            if data.get("customerId") in (None, "", NULL_GUID) and not data.get("customerNumber"):
                data["customerId"] = invoice.data["customerId"]
        else:
            data["appliesToInvoiceId"] = NULL_GUID
    if written & {"customerId", "customerNumber"} or (existing is None and (data.get("customerId") not in (None, "", NULL_GUID) or data.get("customerNumber"))):
        customer = None
        if data.get("customerId") not in (None, "", NULL_GUID):
            customer = find(company, "customers", data["customerId"])
            if customer is None:
                raise BCError(400, "Application_DialogException", 'The "customerId" does not match to a Customer.')
        elif data.get("customerNumber"):
            customer = find_by(company, "customers", "number", data["customerNumber"])
            if customer is None:
                raise BCError(400, "Application_DialogException", 'The "customerNumber" does not match to a Customer.')
        if customer is not None:
            data["customerId"], data["customerNumber"] = str(customer.guid), customer.data["number"]
    if not data.get("documentNumber"):
        data["documentNumber"] = next_number(company, "GJNL-PMT")
    if not data.get("postingDate") or data["postingDate"] == BLANK_DATE:
        data["postingDate"] = today()
    check_failing(data["documentNumber"], data.get("externalDocumentNumber") or "", field="Document No.")
    if existing is None:
        line = create_entity(company, spec, data, parent=journal)
    else:
        existing.data = data
        save(existing)
        line = existing
    save(journal)
    changed(journal, "updated")
    return line


# --- posting ------------------------------------------------------------------------------------------
def gl_entry(company: Company, *, posting_date: str, document_number: str, document_type: str, account: str, description: str, debit=0, credit=0) -> Entity:
    data = {
        "entryNumber": int(next_number(company, "GL")),
        "postingDate": posting_date,
        "documentNumber": document_number,
        "documentType": document_type,
        "accountId": NULL_GUID,
        "accountNumber": account,
        "description": description[:100],
        "debitAmount": money(debit),
        "creditAmount": money(credit),
        "additionalCurrencyDebitAmount": Decimal(0),
        "additionalCurrencyCreditAmount": Decimal(0),
    }
    entry = create_entity(company, specs.GL_ENTRIES, data)
    changed(entry, "created")
    return entry


def _customer_balance(company: Company, customer_id: str, delta: Decimal) -> None:
    customer = find(company, "customers", customer_id, lock=True)
    if customer is not None:
        customer.data["balanceDue"] = money(customer.data.get("balanceDue")) + delta
        save(customer)
        changed(customer, "updated")


def _postable(company: Company, document: Entity) -> Entity:
    if document.data.get("status") in POSTED:
        noun = {"salesInvoices": "invoice", "salesCreditMemos": "credit memo"}[document.entity_set]
        raise BCError(400, "Application_DialogException", f"The {noun} has already been posted.")
    lines = Entity.objects.filter(parent=document, entity_set=specs.SPECS[document.entity_set].lines)
    if not any(Decimal(str(line.data.get("quantity") or 0)) for line in lines if line.data.get("lineType") != "Comment"):
        raise BCError(400, "Application_DialogException", "There is nothing to post.")
    customer = find(company, "customers", document.data["customerId"])
    blocked = (customer.data.get("blocked") or " ").strip() if customer else ""
    if blocked in ("Invoice", "All"):
        raise BCError(
            400, "Application_DialogException", f"You cannot post this type of document when Customer {customer.data['number']} is blocked with type {blocked}"
        )
    return customer


def post_invoice(company: Company, invoice: Entity) -> None:
    _postable(company, invoice)
    data = invoice.data
    posting_date = data.get("postingDate") if data.get("postingDate") not in (None, "", BLANK_DATE) else today()
    data["postingDate"] = posting_date
    if data.get("invoiceDate") in (None, "", BLANK_DATE):
        data["invoiceDate"] = posting_date
    if data.get("dueDate") in (None, "", BLANK_DATE):
        data["dueDate"] = data["invoiceDate"]
    total = money(data.get("totalAmountIncludingTax"))
    data["number"] = next_number(company, "PS-INV")
    data["status"] = "Open" if total > 0 else "Paid"
    data["remainingAmount"] = total
    save(invoice)
    description = f"Invoice {data['number']}"
    gl_entry(
        company,
        posting_date=posting_date,
        document_number=data["number"],
        document_type="Invoice",
        account=RECEIVABLES_ACCOUNT,
        description=description,
        debit=total,
    )
    gl_entry(
        company,
        posting_date=posting_date,
        document_number=data["number"],
        document_type="Invoice",
        account=REVENUE_ACCOUNT,
        description=description,
        credit=total,
    )
    _customer_balance(company, data["customerId"], total)
    changed(invoice, "updated")


def _apply_to_invoice(company: Company, invoice_id: str, amount: Decimal) -> Decimal:
    """Apply up to `amount` to a posted invoice; returns what was applied."""
    invoice = find(company, "salesInvoices", invoice_id, lock=True)
    if invoice is None or invoice.data.get("status") not in POSTED:
        return Decimal(0)
    remaining = money(invoice.data.get("remainingAmount"))
    applied = min(remaining, amount) if remaining > 0 else Decimal(0)
    if applied:
        invoice.data["remainingAmount"] = remaining - applied
        if invoice.data["remainingAmount"] <= 0:
            invoice.data["status"] = "Paid"
        save(invoice)
        changed(invoice, "updated")
    return applied


def post_credit_memo(company: Company, memo: Entity) -> None:
    _postable(company, memo)
    data = memo.data
    posting_date = data.get("postingDate") if data.get("postingDate") not in (None, "", BLANK_DATE) else today()
    data["postingDate"] = posting_date
    if data.get("creditMemoDate") in (None, "", BLANK_DATE):
        data["creditMemoDate"] = posting_date
    total = money(data.get("totalAmountIncludingTax"))
    data["number"] = next_number(company, "PS-CR")
    applied = _apply_to_invoice(company, data["invoiceId"], total) if data.get("invoiceId") not in (None, "", NULL_GUID) else Decimal(0)
    data["status"] = "Paid" if applied >= total else "Open"
    save(memo)
    description = f"Credit Memo {data['number']}"
    gl_entry(
        company,
        posting_date=posting_date,
        document_number=data["number"],
        document_type="Credit Memo",
        account=REVENUE_ACCOUNT,
        description=description,
        debit=total,
    )
    gl_entry(
        company,
        posting_date=posting_date,
        document_number=data["number"],
        document_type="Credit Memo",
        account=RECEIVABLES_ACCOUNT,
        description=description,
        credit=total,
    )
    _customer_balance(company, data["customerId"], -total)
    changed(memo, "updated")


def post_journal(company: Company, journal: Entity) -> None:
    lines = list(Entity.objects.filter(parent=journal, entity_set="customerPayments").order_by("id"))
    if not lines:
        raise BCError(400, "Application_DialogException", "There is nothing to post.")
    where = f"Journal Template Name={JOURNAL_TEMPLATE}, Journal Batch Name={journal.data['code']}"
    for line in lines:
        d, at = line.data, f"{where}, Line No.={line.data.get('lineNumber')}"
        if d.get("customerId") in (None, "", NULL_GUID):
            raise BCError(400, "Application_FieldValidationException", f"Account No. must have a value in Gen. Journal Line: {at}. It cannot be zero or empty.")
        if not d.get("documentNumber"):
            raise BCError(
                400, "Application_FieldValidationException", f"Document No. must have a value in Gen. Journal Line: {at}. It cannot be zero or empty."
            )
        amount = Decimal(str(d.get("amount") or 0))
        if not amount:
            raise BCError(400, "Application_FieldValidationException", f"Amount must have a value in Gen. Journal Line: {at}. It cannot be zero or empty.")
        if d.get("appliesToInvoiceId") not in (None, "", NULL_GUID):
            invoice = find(company, "salesInvoices", d["appliesToInvoiceId"])
            if invoice is None or invoice.data.get("status") not in POSTED:
                raise BCError(
                    400, "Application_DialogException", 'The "appliesToInvoiceId" should be the ID of an Open, Paid, Corrective, or Canceled Invoice.'
                )
            if invoice.data["customerId"] != d["customerId"]:
                raise BCError(
                    400, "Application_DialogException", f"The invoice {invoice.data['number']} is not an invoice of customer {d.get('customerNumber')} ({at})."
                )
            if amount > 0:  # [U] see the module docstring
                raise BCError(400, "Application_FieldValidationException", f"Amount must be negative in Gen. Journal Line: {at}.")
    for line in lines:
        d = line.data
        amount = money(d["amount"])
        if d.get("appliesToInvoiceId") not in (None, "", NULL_GUID) and amount < 0:
            _apply_to_invoice(company, d["appliesToInvoiceId"], -amount)
        description = d.get("description") or f"Payment {d['documentNumber']}"
        bank, receivables = (-amount, Decimal(0)), (Decimal(0), -amount)
        if amount > 0:
            bank, receivables = (Decimal(0), amount), (amount, Decimal(0))
        gl_entry(
            company,
            posting_date=d.get("postingDate") or today(),
            document_number=d["documentNumber"],
            document_type="Payment",
            account=journal.data.get("balancingAccountNumber") or BANK_ACCOUNT,
            description=description,
            debit=bank[0],
            credit=bank[1],
        )
        gl_entry(
            company,
            posting_date=d.get("postingDate") or today(),
            document_number=d["documentNumber"],
            document_type="Payment",
            account=RECEIVABLES_ACCOUNT,
            description=description,
            debit=receivables[0],
            credit=receivables[1],
        )
        _customer_balance(company, d["customerId"], amount)
        line.delete()
    save(journal)
    changed(journal, "updated")
