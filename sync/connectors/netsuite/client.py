"""NetSuite ERP connector: SuiteTalk REST records + SuiteQL, signed with Token-Based Auth.

Every write is an upsert by external id (`PUT /record/v1/{type}/eid:{externalId}`), so a
retried step never creates a second record. SKUs, currencies and subsidiaries are resolved
to NetSuite internal ids through SuiteQL and cached for the life of the connector instance.
Requests are signed by requests-oauthlib (OAuth 1.0a, HMAC-SHA256, realm = account id) and
sent through `sync.connectors.http.send` (timeouts, bounded 429 waits, call recording).

NetSuite error bodies ({"o:errorDetails": [{"detail", "o:errorCode", "o:errorPath"}]}) become
ConnectorError classified by ERROR_CODES: 400 → validation (field = o:errorPath), 401
INVALID_LOGIN → auth, 404 → not_found, 429 → rate_limit, 5xx → unavailable. ASSUMPTION
(API_REFERENCE [U]): NetSuite's REST concurrency-limit response is undocumented; 429 is
treated as "retry later", as are the RESTlet/SOAP codes SSS_REQUEST_LIMIT_EXCEEDED and
WS_REQUEST_BLOCKED.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from requests_oauthlib import OAuth1

from sync.connectors.errors import CodeTable, ConnectorError, classify
from sync.connectors.http import WaitPolicy, parse_retry_after, send
from sync.connectors.roles import CallResult, ERPConnector
from sync.models import ErrorClass, LegalEntity

from . import mapper, wire

RECORD_PATH = "/services/rest/record/v1"
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
PAGE_SIZE = 1000  # SuiteQL's maximum page
ERROR_CODES = CodeTable(
    {
        ErrorClass.RATE_LIMIT: {"REQUEST_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED", "WS_REQUEST_BLOCKED", "CONCURRENCY_LIMIT_EXCEEDED"},
        ErrorClass.AUTH: {"INVALID_LOGIN"},
        ErrorClass.DUPLICATE: {"DUP_RCRD", "DUP_ENTITY", "DUP_ITEM", "DUPLICATE_EXTERNAL_ID"},
        ErrorClass.CONFLICT: {"IDEMPOTENCY_ERROR", "RCRD_HAS_BEEN_CHANGED", "RCRD_LOCKED_BY_WF"},
    },
    # a duplicate-record code outranks a 409: the record exists, trying again will not help
    precedence=(
        ErrorClass.RATE_LIMIT,
        ErrorClass.AUTH,
        ErrorClass.NOT_FOUND,
        ErrorClass.DUPLICATE,
        ErrorClass.CONFLICT,
        ErrorClass.TIMEOUT,
        ErrorClass.UNAVAILABLE,
    ),
)
TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS'  # TO_CHAR format for exact times (ASSUMPTION: account time zone UTC)
ITEM_CHARGE_FIELD = "custitem_q2c_charge_type"  # [U] custom item fields saying how an item bills
ITEM_INTERVAL_FIELD = "custitem_q2c_billing_interval"
DEFAULT_CREDIT_ITEM_SKU = "ADJUSTMENT"  # the item a credit memo without lines is booked on
TRANSACTION_TYPES = {"salesOrder": "SalesOrd", "invoice": "CustInvc", "customerPayment": "CustPymt", "creditMemo": "CustCred"}
_ITEM_PATH = re.compile(r"^item\.items\[(\d+)\]\.item$")


def _q(value: str) -> str:
    """A SuiteQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _error_body(response: requests.Response) -> tuple[dict, dict]:
    """(the error body, its first o:errorDetails entry), {} where NetSuite sent none."""
    try:
        body = wire.loads(response.text) if response.text else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    details = body.get("o:errorDetails") or [{}]
    return body, details[0] if isinstance(details[0], dict) else {}


def error_code(response: requests.Response) -> str:
    """NetSuite's o:errorCode of an error response ("" if none)."""
    return str(_error_body(response)[1].get("o:errorCode") or "")


def error_from_response(response: requests.Response, *, system: str = "netsuite") -> ConnectorError:
    """A NetSuite error response → ConnectorError with NetSuite's own message, code and field."""
    body, first = _error_body(response)
    code = str(first.get("o:errorCode") or "")
    message = str(first.get("detail") or body.get("title") or f"HTTP {response.status_code} from NetSuite")
    return ConnectorError(
        classify(response.status_code, code, ERROR_CODES),
        message,
        system=system,
        field=str(first.get("o:errorPath") or ""),
        code=code,
        status_code=response.status_code,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        response=body,
    )


class NetSuiteConnector(ERPConnector):
    system = "netsuite"

    def __init__(
        self,
        *,
        base_url: str,
        account_id: str,
        consumer_key: str,
        consumer_secret: str,
        token_id: str,
        token_secret: str,
        timeout: float = 20.0,
        max_rate_limit_wait: float = 30.0,
        tax_item: str = "SALES-TAX",
    ):
        self.base_url = base_url.rstrip("/")
        self.tax_item = tax_item  # SKU (itemId) of the item billing-calculated tax is posted on
        self.account_id = account_id
        self.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self.session = requests.Session()
        self.session.auth = OAuth1(
            consumer_key,
            client_secret=consumer_secret,
            resource_owner_key=token_id,
            resource_owner_secret=token_secret,
            signature_method="HMAC-SHA256",
            realm=account_id,
        )
        self.session.headers.update({"Accept": "application/json"})
        self._item_ids: dict[str, str] = {}  # SKU → internal id
        self._charges: dict[str, tuple[str, str]] = {}  # SKU → (charge type, billing interval) of the item
        self._skus: dict[str, str] = {}  # internal id → SKU
        self._currencies: dict[str, str] | None = None  # ISO code → internal id

    @classmethod
    def from_settings(cls) -> NetSuiteConnector:
        config = settings.CONNECTORS["netsuite"]
        return cls(
            base_url=config["base_url"],
            account_id=config["account_id"],
            consumer_key=config["consumer_key"],
            consumer_secret=config["consumer_secret"],
            token_id=config["token_id"],
            token_secret=config["token_secret"],
            timeout=getattr(settings, "CONNECTOR_TIMEOUT_SECONDS", 20.0),
            tax_item=config.get("tax_item", "SALES-TAX"),
        )

    # --- HTTP ---------------------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, operation: str, body: Any = None, params: dict | None = None, headers: dict | None = None
    ) -> requests.Response:
        """One signed call; a NetSuite error response raises ConnectorError."""
        headers = dict(headers or {})
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
            kwargs["data"] = wire.dumps(body).encode()
        response = send(
            self.session,
            method,
            f"{self.base_url}{path}",
            system=self.system,
            operation=operation,
            timeout=self.timeout,
            table=ERROR_CODES,
            code_of=error_code,
            waits=WaitPolicy(max_wait=self.max_rate_limit_wait),
            **kwargs,
        )
        if response.status_code >= 400:
            raise error_from_response(response, system=self.system)
        return response

    def _json(self, response: requests.Response) -> dict:
        try:
            return wire.loads(response.text) if response.text else {}
        except ValueError as exc:
            raise ConnectorError(
                ErrorClass.UNAVAILABLE,
                f"NetSuite answered {response.status_code} with a body that is not JSON",
                system=self.system,
                status_code=response.status_code,
            ) from exc

    @staticmethod
    def _eid(external_id: str) -> str:
        if not external_id:
            raise ConnectorError(ErrorClass.VALIDATION, "An external id is required for an upsert", system="netsuite", field="externalId")
        return "eid:" + quote(str(external_id), safe="-_.~")

    # --- records --------------------------------------------------------------------------------
    def upsert_record(self, record_type: str, *, external_id: str, body: dict, replace: str | None = None) -> CallResult:
        """PUT /record/v1/{type}/eid:{external_id}: create or update, exactly one record per external id."""
        path = f"{RECORD_PATH}/{record_type}/{self._eid(external_id)}"
        params = {"replace": replace} if replace else None
        response = self.request("PUT", path, operation=f"upsert {record_type}", body=body, params=params)
        internal_id = self._id_from_location(response)
        if internal_id is None:  # ASSUMPTION: upsert answers with Location like create; if not, read it back
            internal_id = self._read_back_id(record_type, external_id)
        return CallResult(external_id=internal_id, created=None, status_code=response.status_code, raw={"location": response.headers.get("Location", "")})

    READ_BACKS = 3

    def _read_back_id(self, record_type: str, external_id: str) -> str:
        """The internal id of the record an upsert wrote, read back by its external id. An answer
        without an id (a garbled body) is read again; still none is a transient failure — the upsert
        is repeated safely by external id — never a mapping error on a record that was written."""
        for _ in range(self.READ_BACKS):
            record = self.get_record(record_type, external_id=external_id, expand=False)
            internal_id = record.get("id") if isinstance(record, dict) else None
            if internal_id not in (None, ""):
                return str(internal_id)
        raise ConnectorError(
            ErrorClass.UNAVAILABLE,
            f"NetSuite accepted the {record_type} upsert but {self.READ_BACKS} reads by external id {external_id} answered without a record id",
            system=self.system,
        )

    def create_record(self, record_type: str, *, body: dict) -> CallResult:
        response = self.request("POST", f"{RECORD_PATH}/{record_type}", operation=f"create {record_type}", body=body)
        internal_id = self._id_from_location(response)
        if internal_id is None:
            raise ConnectorError(ErrorClass.UNAVAILABLE, "NetSuite created a record but sent no Location header", system=self.system)
        return CallResult(external_id=internal_id, created=True, status_code=response.status_code)

    def get_record(self, record_type: str, *, internal_id: str | None = None, external_id: str | None = None, expand: bool = True) -> dict:
        key = self._eid(external_id) if external_id is not None else quote(str(internal_id), safe="")
        params = {"expandSubResources": "true"} if expand else None
        return self._json(self.request("GET", f"{RECORD_PATH}/{record_type}/{key}", operation=f"get {record_type}", params=params))

    def find_record(self, record_type: str, *, external_id: str) -> dict | None:
        try:
            return self.get_record(record_type, external_id=external_id)
        except ConnectorError as exc:
            if exc.error_class == ErrorClass.NOT_FOUND:
                return None
            raise

    def patch_record(self, record_type: str, internal_id: str, *, body: dict) -> CallResult:
        response = self.request("PATCH", f"{RECORD_PATH}/{record_type}/{quote(str(internal_id), safe='')}", operation=f"update {record_type}", body=body)
        return CallResult(external_id=str(internal_id), created=False, status_code=response.status_code)

    @staticmethod
    def _id_from_location(response: requests.Response) -> str | None:
        location = response.headers.get("Location", "").rstrip("/")
        tail = location.rsplit("/", 1)[-1] if location else ""
        return tail if tail.isdigit() else None

    # --- lookups (SuiteQL, cached per instance) ------------------------------------------------------
    def item_ids(self, skus: list[str], *, field_of: dict[str, str] | None = None) -> dict[str, str]:
        """SKU → item internal id (items carry the SKU as itemId). An unknown SKU is a mapping error."""
        missing = sorted({s for s in skus if s and s not in self._item_ids})
        if missing:
            in_list = ", ".join(_q(s) for s in missing)
            for row in self.query(q=f"SELECT id, itemid, {ITEM_CHARGE_FIELD}, {ITEM_INTERVAL_FIELD} FROM item WHERE itemid IN ({in_list})"):
                self._item_ids[row["itemid"]] = str(row["id"])
                self._skus[str(row["id"])] = row["itemid"]
                self._charges[row["itemid"]] = (row.get(ITEM_CHARGE_FIELD) or "", row.get(ITEM_INTERVAL_FIELD) or "")
        for sku in skus:
            if not sku or sku not in self._item_ids:
                field = (field_of or {}).get(sku, "sku")
                raise ConnectorError(
                    ErrorClass.MAPPING,
                    f"No NetSuite item has itemId {sku!r} (SKU in {field}); add the item or fix the SKU",
                    system=self.system,
                    field=field,
                    code="UNKNOWN_SKU",
                )
        return {sku: self._item_ids[sku] for sku in skus}

    def sku_for(self, item_id: str | None) -> str | None:
        if item_id and item_id not in self._skus:
            for row in self.query(q=f"SELECT id, itemid FROM item WHERE id = {_q(item_id)}"):
                self._skus[str(row["id"])] = row["itemid"]
                self._item_ids[row["itemid"]] = str(row["id"])
        return self._skus.get(item_id or "")

    def check_charges(self, lines: list[dict], prefix: str = "lines") -> None:
        """Each line must bill as its ERP item does (a one-time item is never a monthly line)."""
        try:
            mapper.check_charges(lines, self._charges, prefix=prefix)
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc

    def forget_lookups(self) -> None:
        self._item_ids.clear()
        self._charges.clear()
        self._skus.clear()
        self._currencies = None

    def currency_id(self, code: str, *, field: str = "currency") -> str:
        if self._currencies is None:
            self._currencies_load()
        try:
            return self._currencies[(code or "").upper()]
        except KeyError:
            raise ConnectorError(ErrorClass.MAPPING, f"Currency {code!r} is not enabled in NetSuite", system=self.system, field=field) from None

    def currency_code(self, currency_id: str | None) -> str | None:
        if currency_id is None:
            return None
        if self._currencies is None:
            self._currencies_load()
        return next((code for code, cid in (self._currencies or {}).items() if cid == str(currency_id)), None)

    def _currencies_load(self) -> None:
        self._currencies = {row["symbol"].upper(): str(row["id"]) for row in self.query(q="SELECT id, symbol FROM currency")}

    def subsidiary_id(self, document: dict) -> str | None:
        """The ERP subsidiary of an order/invoice/customer: its erp_subsidiary_id, else its legal entity's."""
        if document.get("erp_subsidiary_id"):
            return str(document["erp_subsidiary_id"])
        code = document.get("legal_entity")
        if code:
            found = LegalEntity.objects.filter(code=code).values_list("erp_subsidiary_id", flat=True).first()
            if not found:
                raise ConnectorError(ErrorClass.MAPPING, f"Legal entity {code!r} has no NetSuite subsidiary id", system=self.system, field="legal_entity")
            return str(found)
        return None

    def _with_item_retry(self, write):
        """Run a write; if NetSuite rejects an item reference, refresh the SKU cache and try once more
        (the catalogue changed since it was cached)."""
        try:
            return write()
        except ConnectorError as exc:
            if exc.error_class == ErrorClass.VALIDATION and exc.code == "INVALID_CONTENT" and _ITEM_PATH.match(exc.field or "") and self._item_ids:
                self._item_ids.clear()
                self._skus.clear()
                return write()
            raise

    @staticmethod
    def _mapping(exc: mapper.MappingError) -> ConnectorError:
        return ConnectorError(ErrorClass.MAPPING, str(exc), system="netsuite", field=exc.field)

    # --- ERPConnector ----------------------------------------------------------------------------
    def health(self) -> dict:
        rows = list(self.query(q="SELECT id, name FROM subsidiary", limit=10))
        return {"ok": True, "account_id": self.account_id, "subsidiaries": len(rows)}

    def upsert_customer(self, *, customer: dict, external_id: str) -> CallResult:
        flat = mapper.flat_customer(customer)
        subsidiary = self.subsidiary_id(flat)
        if not subsidiary:
            raise ConnectorError(ErrorClass.MAPPING, "The customer has no legal entity / ERP subsidiary", system=self.system, field="legal_entity")
        currency = self.currency_id(flat["currency"]) if flat.get("currency") else None
        try:
            body = mapper.customer_body(customer, subsidiary_id=subsidiary, currency_id=currency)
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc
        return self.upsert_record("customer", external_id=external_id, body=body)

    def get_customer(self, *, external_id: str) -> dict | None:
        record = self.find_record("customer", external_id=external_id)
        if record is None:
            return None
        return mapper.customer_from_netsuite(record, currency_code=self.currency_code(mapper.ref_id(record.get("currency"))))

    def upsert_sales_order(self, *, order: dict, customer_id: str, external_id: str) -> CallResult:
        lines = order.get("lines") or []
        field_of = {line.get("sku"): f"lines[{i}].sku" for i, line in reversed(list(enumerate(lines)))}

        def write() -> CallResult:
            item_ids = self.item_ids([line.get("sku") for line in lines], field_of=field_of)
            self.check_charges(lines)
            try:
                body = mapper.sales_order_body(
                    order,
                    customer_id=customer_id,
                    item_ids=item_ids,
                    currency_id=self.currency_id(order.get("currency")),
                    subsidiary_id=self.subsidiary_id(order),
                    external_id=external_id,
                )
            except mapper.MappingError as exc:
                raise self._mapping(exc) from exc
            return self.upsert_record("salesOrder", external_id=external_id, body=body, replace="item")

        return self._with_item_retry(write)

    def _sales_order_view(self, record: dict) -> dict:
        for line in (record.get("item") or {}).get("items", []):
            self.sku_for(mapper.ref_id(line.get("item")))
        return mapper.sales_order_from_netsuite(record, skus_by_item_id=self._skus, currency_code=self.currency_code(mapper.ref_id(record.get("currency"))))

    def get_sales_order(self, *, external_id: str) -> dict | None:
        record = self.find_record("salesOrder", external_id=external_id)
        return None if record is None else self._sales_order_view(record)

    def close_sales_order(self, *, sales_order_id: str, external_id: str) -> CallResult:
        record = self.get_record("salesOrder", internal_id=sales_order_id)
        patch = mapper.close_lines_patch(record)
        if not patch["item"]["items"]:
            return CallResult(external_id=str(sales_order_id), created=False, raw={"already_closed": True})
        return self.patch_record("salesOrder", sales_order_id, body=patch)

    def record_order_change(self, *, change: dict, sales_order_id: str, customer_id: str, external_id: str) -> CallResult:
        original = self.get_record("salesOrder", internal_id=sales_order_id)
        changes = change.get("changes") or []
        field_of = {line.get("sku"): f"changes[{i}].sku" for i, line in reversed(list(enumerate(changes)))}

        def write() -> CallResult:
            item_ids = self.item_ids([line.get("sku") for line in changes], field_of=field_of) if changes else {}
            self.check_charges(changes, prefix="changes")
            currency = self.currency_id(change["currency"]) if change.get("currency") else None
            try:
                body = mapper.change_order_body(
                    change, original=original, customer_id=customer_id, item_ids=item_ids, currency_id=currency, external_id=external_id
                )
            except mapper.MappingError as exc:
                raise self._mapping(exc) from exc
            return self.upsert_record("salesOrder", external_id=external_id, body=body, replace="item")

        return self._with_item_retry(write)

    def upsert_invoice(self, *, invoice: dict, customer_id: str, external_id: str) -> CallResult:
        lines = invoice.get("lines") or []
        field_of = {line.get("sku"): f"lines[{i}].sku" for i, line in reversed(list(enumerate(lines)))}
        for i, line in enumerate(lines):
            if not line.get("sku"):
                raise ConnectorError(
                    ErrorClass.MAPPING,
                    f"Invoice line {i + 1} ({line.get('description', '')!r}) has no SKU, so no NetSuite item",
                    system=self.system,
                    field=f"lines[{i}].sku",
                )

        taxed = bool(invoice.get("tax")) and mapper.to_decimal(invoice["tax"], "tax") != 0
        tax_sku = self.tax_item if taxed else None
        if tax_sku:
            field_of.setdefault(tax_sku, "tax")

        def write() -> CallResult:
            item_ids = self.item_ids([line["sku"] for line in lines] + ([tax_sku] if tax_sku else []), field_of=field_of)
            try:
                body = mapper.invoice_body(
                    invoice,
                    customer_id=customer_id,
                    item_ids=item_ids,
                    currency_id=self.currency_id(invoice.get("currency")),
                    subsidiary_id=self.subsidiary_id(invoice),
                    external_id=external_id,
                    sales_order_id=invoice.get("sales_order_id"),
                    tax_item_id=item_ids.get(tax_sku) if tax_sku else None,
                )
            except mapper.MappingError as exc:
                raise self._mapping(exc) from exc
            return self.upsert_record("invoice", external_id=external_id, body=body, replace="item")

        return self._with_item_retry(write)

    def get_invoice(self, *, external_id: str) -> dict | None:
        record = self.find_record("invoice", external_id=external_id)
        if record is None:
            return None
        for line in (record.get("item") or {}).get("items", []):
            self.sku_for(mapper.ref_id(line.get("item")))
        return mapper.invoice_from_netsuite(record, skus_by_item_id=self._skus, currency_code=self.currency_code(mapper.ref_id(record.get("currency"))))

    def upsert_payment(self, *, payment: dict, customer_id: str, invoice_id: str | None, external_id: str) -> CallResult:
        try:
            body = mapper.payment_body(
                payment, customer_id=customer_id, currency_id=self.currency_id(payment.get("currency")), invoice_id=invoice_id, external_id=external_id
            )
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc
        return self.upsert_record("customerPayment", external_id=external_id, body=body, replace="apply")

    def get_payment(self, *, external_id: str) -> dict | None:
        record = self.find_record("customerPayment", external_id=external_id)
        if record is None:
            return None
        return mapper.payment_from_netsuite(record, currency_code=self.currency_code(mapper.ref_id(record.get("currency"))))

    def upsert_credit_memo(self, *, credit_memo: dict, customer_id: str, external_id: str) -> CallResult:
        lines = credit_memo.get("lines") or []
        field_of = {line.get("sku"): f"lines[{i}].sku" for i, line in reversed(list(enumerate(lines)))}

        def write() -> CallResult:
            skus = [line.get("sku") for line in lines] + [DEFAULT_CREDIT_ITEM_SKU]
            item_ids = self.item_ids(skus, field_of={**field_of, DEFAULT_CREDIT_ITEM_SKU: "credit memo adjustment item"})
            try:
                body = mapper.credit_memo_body(
                    credit_memo,
                    customer_id=customer_id,
                    item_ids=item_ids,
                    default_item_id=item_ids[DEFAULT_CREDIT_ITEM_SKU],
                    currency_id=self.currency_id(credit_memo.get("currency")),
                    subsidiary_id=self.subsidiary_id(credit_memo),
                    invoice_id=credit_memo.get("erp_invoice_id") or credit_memo.get("invoice_id"),
                    external_id=external_id,
                )
            except mapper.MappingError as exc:
                raise self._mapping(exc) from exc
            return self.upsert_record("creditMemo", external_id=external_id, body=body, replace="item")

        return self._with_item_retry(write)

    def get_credit_memo(self, *, external_id: str) -> dict | None:
        record = self.find_record("creditMemo", external_id=external_id)
        if record is None:
            return None
        return mapper.credit_memo_from_netsuite(record, currency_code=self.currency_code(mapper.ref_id(record.get("currency"))))

    # --- SuiteQL ---------------------------------------------------------------------------------
    def query_page(self, *, q: str, limit: int = PAGE_SIZE, offset: int = 0) -> dict:
        """One SuiteQL page as NetSuite returns it: {links, count, hasMore, items, offset, totalResults}."""
        response = self.request(
            "POST",
            SUITEQL_PATH,
            operation="suiteql",
            body={"q": q},
            params={"limit": max(1, min(limit, PAGE_SIZE)), "offset": offset},
            headers={"Prefer": "transient"},
        )
        return self._json(response)

    def query(self, *, q: str, limit: int = PAGE_SIZE) -> Iterator[dict]:
        """Every row of a SuiteQL query, fetched `limit` (≤ 1000) rows per request, following hasMore."""
        page_size = max(1, min(limit, PAGE_SIZE))
        offset = 0
        while True:
            page = self.query_page(q=q, limit=page_size, offset=offset)
            items = page.get("items") or []
            for row in items:
                yield {k: v for k, v in row.items() if k != "links"}
            if not page.get("hasMore") or not items:
                return
            offset += len(items)

    # --- changes made in NetSuite (polling) ------------------------------------------------------------
    def fetch_changes(self, *, object_type: str, since: datetime | None, limit: int = 2000) -> Iterator[dict]:
        """Raw events for transactions of `object_type` (invoice, salesOrder, customerPayment, creditMemo)
        modified at or after `since`, oldest first. Times have second precision, so the boundary
        second is read again; the raw event id (record id + modification time) lets the inbox drop repeats."""
        type_code = TRANSACTION_TYPES.get(object_type)
        if type_code is None:
            raise ConnectorError(
                ErrorClass.VALIDATION, f"NetSuite polling supports {', '.join(TRANSACTION_TYPES)}, not {object_type!r}", system=self.system, field="object_type"
            )
        where = f"type = {_q(type_code)}"
        if since is not None:
            moment = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)
            where += f" AND lastmodifieddate >= TO_TIMESTAMP({_q(moment.strftime('%Y-%m-%d %H:%M:%S'))}, 'YYYY-MM-DD HH24:MI:SS')"
        q = (
            "SELECT id, tranid, externalid, status, foreigntotal, foreignamountremaining, currency, entity, "
            f"TO_CHAR(createddate, '{TIMESTAMP_FORMAT}') AS createdat, TO_CHAR(lastmodifieddate, '{TIMESTAMP_FORMAT}') AS lastmodified "
            f"FROM transaction WHERE {where} ORDER BY lastmodifieddate, id"
        )
        for count, row in enumerate(self.query(q=q)):
            if count >= limit:
                return
            yield {
                "id": f"{object_type}:{row['id']}:{row['lastmodified']}",
                "type": f"{object_type}.modified",
                "occurred_at": f"{row['lastmodified']}Z",
                "payload": {**row, "record_type": object_type},
            }

    def normalize(self, raw: dict) -> list[dict]:
        """An ERP-side invoice change → invoice.posted.v1 (one envelope per invoice: its id is stable,
        so later edits of the same invoice are recognised as the same posting)."""
        if raw.get("type") != "invoice.modified":
            return []
        row = raw.get("payload") or {}
        if not row.get("tranid") or not row.get("id"):
            return []
        status = mapper.INVOICE_STATUS.get(str(row.get("status") or ""), str(row.get("status") or "").lower())
        data = {
            "invoice_number": row["tranid"],
            "erp_invoice_id": str(row["id"]),
            "posted_at": f"{row.get('createdat') or row.get('lastmodified')}Z",
            "erp_external_id": row.get("externalid"),
            "status": status,
        }
        if row.get("foreigntotal") is not None:
            data["total"] = mapper.money_str(row["foreigntotal"])
        if row.get("foreignamountremaining") is not None:
            data["amount_remaining"] = mapper.money_str(row["foreignamountremaining"])
        currency = self.currency_code(row.get("currency"))
        if currency:
            data["currency"] = currency
        return [
            {
                "id": f"netsuite-invoice-{row['id']}-posted",
                "type": "invoice.posted.v1",
                "source": "netsuite",
                "occurred_at": data["posted_at"],
                "data": {k: v for k, v in data.items() if v not in (None, "")},
            }
        ]
