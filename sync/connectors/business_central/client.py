"""Microsoft Dynamics 365 Business Central ERP connector: API v2.0, OData v4 JSON, client credentials.

Every path is under `{base_url}/v2.0/{tenant}/{environment}/api/v2.0/companies({companyId})/…`;
the bearer token comes from Microsoft Entra (auth.py) and is cached until shortly before it
expires. Calls go through `sync.connectors.http.send` (timeouts, bounded 429 waits honouring
Retry-After, call records); an error body `{"error": {"code", "message"}}` becomes a
ConnectorError classified by ERROR_CODES.

What BC does not give and how the connector makes up for it:
- **No idempotency key, no upsert.** Every write first looks for the record by the hub's key
  (`$filter=externalDocumentNumber eq '…'`, for customers `number eq '…'`, see mapper.py),
  updates it when found and creates it only when not: a retried step finds what the first try
  wrote. A create whose answer was lost is found by the next try the same way.
- **Optimistic concurrency.** PATCH and DELETE carry `If-Match: <@odata.etag>` (BC refuses a
  PATCH without one: 400 BadRequest_InvalidToken); a stale ETag is 409 Request_EntityChanged,
  on which the connector re-reads the record and tries again, at most ETAG_ATTEMPTS times.
- **Documents are draft → post.** An invoice or credit memo is created as a draft with its
  lines (deep insert) and posted with the bound action `Microsoft.NAV.post` (204). A posted
  document cannot be changed: the second upsert of a posted invoice returns it as it is.
- **Payments go through a journal.** A customer payment is a line of the hub's customer payment
  journal (BUSINESS_CENTRAL_PAYMENT_JOURNAL, created when missing), applied to its invoice, and
  the journal is then posted (`customerPaymentJournals({id})/Microsoft.NAV.post`). Posting
  deletes the line, so a posted payment is found again by its G/L entries
  (`generalLedgerEntries?$filter=documentNumber eq '…' and documentType eq 'Payment'`); its
  hub reference is that document number.
- **Sales orders have no "closed" state.** BC deletes an order once it is fully invoiced, and an
  order that should not be fulfilled is deleted; `close_sales_order` deletes it (unposted, so
  nothing reaches the ledger) and `get_sales_order` then finds none.

One company per connector (BUSINESS_CENTRAL_COMPANY_ID): a document whose legal entity names
another BC company is refused as a mapping error — choosing the company per legal entity is
the routing's job. Items are found by number (= the SKU), currencies by code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from sync.connectors.errors import CodeTable, ConnectorError, classify
from sync.connectors.http import WaitPolicy, parse_retry_after, send
from sync.connectors.netsuite import wire  # exact-decimal JSON (money as JSON numbers), shared with the NetSuite connector
from sync.connectors.roles import CallResult, ERPConnector
from sync.models import ErrorClass, LegalEntity

from . import mapper, webhook
from .auth import DEFAULT_SCOPE, ClientCredentials

log = logging.getLogger(__name__)

SYSTEM = "business_central"
PAGE_SIZE = 1000  # what the connector asks for per page (Prefer: odata.maxpagesize); BC's own maximum is 20,000
ITEM_CHUNK = 20  # SKUs per `number eq … or …` filter
ERROR_CODES = CodeTable(
    {
        ErrorClass.RATE_LIMIT: {"Application_TooManyRequests", "TooManyRequests"},
        ErrorClass.AUTH: {
            "Authentication_InvalidCredentials",
            "Authenciation_InvalidCredentials",  # sic: the spelling in BC's own error table
            "Authentication_TokenExpired",
            "Authentication_MissingOrMalformedToken",
            "Authorization_InsufficientPermissions",
        },
        ErrorClass.NOT_FOUND: {"Internal_RecordNotFound", "Internal_CompanyNotFound"},
        ErrorClass.DUPLICATE: {"Internal_EntityWithSameKeyExists"},
        ErrorClass.CONFLICT: {"Request_EntityChanged"},
        ErrorClass.UNAVAILABLE: {"Internal_TenantUnavailable", "Internal_ServerError", "Internal_MetadataSyncError"},
    },
    # BC answers a duplicate key with 409 too: the record exists, trying again will not help
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
ENTITY_CHANGED = "Request_EntityChanged"
DRAFT_STATUSES = frozenset({"Draft", "In Review", ""})
POLLED_SETS = ("salesInvoices", "salesOrders", "salesCreditMemos", "customers")
NULL_GUID = "00000000-0000-0000-0000-000000000000"


def _error_body(response: requests.Response) -> dict:
    try:
        body = wire.loads(response.text) if response.text else {}
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}


def error_code(response: requests.Response) -> str:
    """BC's error.code of an error response ("" if none)."""
    error = _error_body(response).get("error")
    return str(error.get("code") or "") if isinstance(error, dict) else ""


def error_from_response(response: requests.Response, *, system: str = SYSTEM) -> ConnectorError:
    """A BC error response → ConnectorError with BC's own message and code."""
    body = _error_body(response)
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or f"HTTP {response.status_code} from Business Central")
    error_class = classify(response.status_code, code, ERROR_CODES)
    if response.status_code == 412:  # a proxy or another BC version saying the ETag is stale
        error_class, code = ErrorClass.CONFLICT, code or ENTITY_CHANGED
    return ConnectorError(
        error_class,
        message,
        system=system,
        code=code,
        status_code=response.status_code,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        response=body,
    )


class BusinessCentralConnector(ERPConnector):
    system = SYSTEM
    ETAG_ATTEMPTS = 3  # a write tried with the current ETag, re-read after each Request_EntityChanged

    def __init__(
        self,
        *,
        base_url: str,
        token_url: str,
        tenant_id: str,
        environment: str,
        company_id: str,
        client_id: str,
        client_secret: str,
        scope: str = DEFAULT_SCOPE,
        timeout: float = 20.0,
        max_rate_limit_wait: float = 30.0,
        payment_journal: str = "Q2C",
        tax_item: str = "SALES-TAX",
        adjustment_item: str = "ADJUSTMENT",
        webhook_client_state: str = "",
        page_size: int = PAGE_SIZE,
    ):
        self.base_url = base_url.rstrip("/")
        self.tenant_id = tenant_id
        self.environment = environment
        self.company_id = str(company_id).lower()
        self.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self.payment_journal_code = payment_journal.upper()
        self.tax_item = tax_item
        self.adjustment_item = adjustment_item
        self.webhook_client_state = webhook_client_state
        self.page_size = max(1, int(page_size))
        self.credentials = ClientCredentials(
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            system=SYSTEM,
            timeout=timeout,
            max_rate_limit_wait=max_rate_limit_wait,
        )
        self.session = requests.Session()
        self.session.auth = self.credentials
        self.session.headers.update({"Accept": "application/json"})
        self._items: dict[str, str] = {}  # SKU (upper-case) → BC item number
        self._currencies: set[str] | None = None  # codes the company knows, its local currency included
        self._journal: dict | None = None

    @classmethod
    def from_settings(cls) -> BusinessCentralConnector:
        config = settings.CONNECTORS[SYSTEM]
        return cls(
            base_url=config["base_url"],
            token_url=config["token_url"],
            tenant_id=config["tenant_id"],
            environment=config["environment"],
            company_id=config["company_id"],
            client_id=config["client_id"],
            client_secret=config["client_secret"],
            scope=config.get("scope") or DEFAULT_SCOPE,
            timeout=float(config.get("timeout") or getattr(settings, "CONNECTOR_TIMEOUT_SECONDS", 20.0)),
            max_rate_limit_wait=float(config.get("max_rate_limit_wait") or 30.0),
            payment_journal=config.get("payment_journal") or "Q2C",
            tax_item=config.get("tax_item") or "SALES-TAX",
            adjustment_item=config.get("adjustment_item") or "ADJUSTMENT",
            webhook_client_state=config.get("webhook_client_state") or "",
        )

    # --- URLs ---------------------------------------------------------------------------------
    @property
    def api_root(self) -> str:
        return f"{self.base_url}/v2.0/{quote(self.tenant_id, safe='')}/{quote(self.environment, safe='')}/api/v2.0"

    def company_path(self, path: str = "") -> str:
        return f"companies({self.company_id})" + (f"/{path.lstrip('/')}" if path else "")

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.api_root}/{path.lstrip('/')}"

    # --- HTTP ---------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        body: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
        etag: str | None = None,
    ) -> requests.Response:
        """One authenticated call; a BC error response raises ConnectorError. A 401 drops the cached
        token and is tried once more with a fresh one."""
        headers = dict(headers or {})
        if etag:
            headers["If-Match"] = etag
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
            kwargs["data"] = wire.dumps(body).encode()
        url = self.url(path)
        for attempt in (1, 2):
            response = send(
                self.session,
                method,
                url,
                system=self.system,
                operation=operation,
                timeout=self.timeout,
                table=ERROR_CODES,
                code_of=error_code,
                waits=WaitPolicy(max_wait=self.max_rate_limit_wait),
                label="Business Central",
                **kwargs,
            )
            if response.status_code == 401 and attempt == 1:
                self.credentials.invalidate()
                continue
            break
        if response.status_code >= 400:
            raise error_from_response(response, system=self.system)
        return response

    def _json(self, response: requests.Response) -> dict:
        try:
            body = wire.loads(response.text) if response.text else {}
        except ValueError as exc:
            raise ConnectorError(
                ErrorClass.UNAVAILABLE,
                f"Business Central answered {response.status_code} with a body that is not JSON",
                system=self.system,
                status_code=response.status_code,
            ) from exc
        return body if isinstance(body, dict) else {}

    def get(self, path: str, *, params: dict | None = None, operation: str = "") -> dict:
        return self._json(self.request("GET", path, params=params, operation=operation or f"get {_set_of(path)}"))

    def pages(self, path: str, *, params: dict | None = None, page_size: int | None = None, operation: str = "") -> Iterator[dict]:
        """Every entity of a collection, page by page: the first request asks for `page_size`
        entities (Prefer: odata.maxpagesize), then `@odata.nextLink` is followed until BC sends none."""
        size = max(1, min(int(page_size or self.page_size), 20000))
        headers = {"Prefer": f"odata.maxpagesize={size}"}
        url, query = self.url(path), params
        operation = operation or f"list {_set_of(path)}"
        while url:
            body = self._json(self.request("GET", url, params=query, headers=headers, operation=operation))
            values = body.get("value")
            if not isinstance(values, list):
                raise ConnectorError(ErrorClass.UNAVAILABLE, f"Business Central answered {operation} without a value list", system=self.system)
            yield from values
            url, query = body.get("@odata.nextLink"), None
            if url and not str(url).startswith(self.base_url + "/"):
                raise ConnectorError(ErrorClass.UNAVAILABLE, f"Business Central sent a next link off its own host: {str(url)[:120]}", system=self.system)

    def find(self, entity_set: str, filter_: str, *, expand: str | None = None, within: str | None = None) -> dict | None:
        """The first entity of `entity_set` (in the company, or under `within`) matching the filter."""
        params = {"$filter": filter_}
        if expand:
            params["$expand"] = expand
        path = self.company_path(f"{within}/{entity_set}" if within else entity_set)
        return next(self.pages(path, params=params, page_size=2, operation=f"find {entity_set}"), None)

    def create(self, path: str, body: dict, *, operation: str) -> dict:
        return self._json(self.request("POST", path, body=body, operation=operation))

    def with_current_etag(self, path: str, write: Callable[[str], requests.Response], etag: str | None, *, operation: str) -> requests.Response:
        """`write(etag)`; on Request_EntityChanged re-read the record at `path` and try again with its
        new ETag, at most ETAG_ATTEMPTS times in all."""
        for attempt in range(1, self.ETAG_ATTEMPTS + 1):
            if not etag:
                etag = self.get(path, operation=f"re-read {_set_of(path)}").get("@odata.etag") or "*"
            try:
                return write(etag)
            except ConnectorError as exc:
                if exc.code != ENTITY_CHANGED or attempt == self.ETAG_ATTEMPTS:
                    raise
                log.info("business central %s: record changed since it was read; reading it again (attempt %s)", operation, attempt)
                etag = None
        raise AssertionError("unreachable")

    def patch(self, path: str, body: dict, *, etag: str | None, operation: str) -> dict:
        response = self.with_current_etag(path, lambda tag: self.request("PATCH", path, body=body, etag=tag, operation=operation), etag, operation=operation)
        return self._json(response)

    def delete(self, path: str, *, etag: str | None, operation: str) -> None:
        self.with_current_etag(path, lambda tag: self.request("DELETE", path, etag=tag, operation=operation), etag, operation=operation)

    def bound_action(self, path: str, action: str, *, etag: str | None, operation: str) -> None:
        self.with_current_etag(
            path, lambda tag: self.request("POST", f"{path}/Microsoft.NAV.{action}", etag=tag, operation=operation), etag, operation=operation
        )

    # --- lookups (cached per instance) -----------------------------------------------------------
    def item_numbers(self, skus: list[str], *, field_of: dict[str, str] | None = None) -> dict[str, str]:
        """SKU → BC item number (items carry the SKU as their number). An unknown SKU is a mapping error."""
        wanted = sorted({s.upper() for s in skus if s and s.upper() not in self._items})
        for start in range(0, len(wanted), ITEM_CHUNK):
            chunk = wanted[start : start + ITEM_CHUNK]
            for item in self.pages(self.company_path("items"), params={"$filter": mapper.any_of("number", chunk), "$select": "id,number,blocked"}):
                self._items[str(item["number"]).upper()] = str(item["number"])
        for sku in skus:
            if not sku or sku.upper() not in self._items:
                field = (field_of or {}).get(sku, "sku")
                raise ConnectorError(
                    ErrorClass.MAPPING,
                    f"No Business Central item has number {sku!r} (SKU in {field}); add the item or fix the SKU",
                    system=self.system,
                    field=field,
                    code="UNKNOWN_SKU",
                )
        return {sku: self._items[sku.upper()] for sku in skus}

    def currency_code(self, code: str | None, *, field: str = "currency") -> str:
        if self._currencies is None:
            info = next(self.pages(self.company_path("companyInformation"), page_size=1, operation="get companyInformation"), {})
            codes = {str(c["code"]).upper() for c in self.pages(self.company_path("currencies"), params={"$select": "code"})}
            self._currencies = codes | ({str(info["currencyCode"]).upper()} if info.get("currencyCode") else set())
        wanted = (code or "").upper()
        if wanted not in self._currencies:
            raise ConnectorError(ErrorClass.MAPPING, f"Currency {code!r} is not set up in the Business Central company", system=self.system, field=field)
        return wanted

    def forget_lookups(self) -> None:
        self._items.clear()
        self._currencies = None
        self._journal = None

    def check_company(self, document: dict) -> None:
        """The document's legal entity must be this connector's BC company (one company per connector)."""
        named = document.get("erp_subsidiary_id")
        field = "erp_subsidiary_id"
        if not named and document.get("legal_entity"):
            named = LegalEntity.objects.filter(code=document["legal_entity"]).values_list("erp_subsidiary_id", flat=True).first()
            field = "legal_entity"
        if named and str(named).lower() != self.company_id:
            raise ConnectorError(
                ErrorClass.MAPPING,
                f"The document belongs to ERP company {named!r}, not to the configured Business Central company {self.company_id}",
                system=self.system,
                field=field,
            )

    def _mapping(self, exc: mapper.MappingError) -> ConnectorError:
        return ConnectorError(ErrorClass.MAPPING, str(exc), system=self.system, field=exc.field)

    def _lines_with_items(self, lines: list[dict], *, prefix: str = "lines", extra: dict[str, str] | None = None) -> None:
        """Resolve every line's SKU (a mapping error names the first unknown one) and write BC's
        own item number into the lines."""
        field_of = {line["lineObjectNumber"]: f"{prefix}[{i}].sku" for i, line in reversed(list(enumerate(lines)))}
        field_of.update(extra or {})
        numbers = self.item_numbers([line["lineObjectNumber"] for line in lines], field_of=field_of)
        for line in lines:
            line["lineObjectNumber"] = numbers[line["lineObjectNumber"]]

    # --- documents ---------------------------------------------------------------------------------
    def _find_document(self, entity_set: str, lines_nav: str | None, external_document_number: str) -> dict | None:
        return self.find(entity_set, mapper.eq_filter("externalDocumentNumber", external_document_number), expand=lines_nav)

    def _read_document(self, entity_set: str, document_id: str, lines_nav: str | None) -> dict:
        params = {"$expand": lines_nav} if lines_nav else None
        return self.get(self.company_path(f"{entity_set}({document_id})"), params=params)

    def _upsert_document(self, entity_set: str, lines_nav: str, *, header: dict, lines: list[dict], post: bool) -> CallResult:
        """Find by externalDocumentNumber, else create (header and lines in one deep insert); make a
        draft match; post it when `post`. A posted document is returned as it is."""
        key = header["externalDocumentNumber"]
        existing = self._find_document(entity_set, lines_nav, key)
        created = existing is None
        if existing is None:
            record = self.create(self.company_path(entity_set), {**header, lines_nav: lines}, operation=f"create {entity_set}")
            if not record.get("id"):  # an answer without the record (a proxy's garble): find what was written
                record = self._find_document(entity_set, lines_nav, key) or {}
                if not record.get("id"):
                    raise ConnectorError(
                        ErrorClass.UNAVAILABLE, f"Business Central accepted the {entity_set} create but it cannot be read back", system=self.system
                    )
        elif post and existing.get("status") not in DRAFT_STATUSES:
            return CallResult(
                external_id=str(existing["id"]), created=False, raw={"status": existing.get("status"), "number": existing.get("number"), "posted": True}
            )
        else:
            record = self._update_document(entity_set, lines_nav, existing, header, lines)
        if post:
            record = self._post_document(entity_set, record)
        return CallResult(external_id=str(record["id"]), created=created, raw={"status": record.get("status"), "number": record.get("number"), "posted": post})

    def _update_document(self, entity_set: str, lines_nav: str, existing: dict, header: dict, lines: list[dict]) -> dict:
        path = self.company_path(f"{entity_set}({existing['id']})")
        changed = _changed(existing, header)
        if changed:
            self.patch(path, changed, etag=existing.get("@odata.etag"), operation=f"update {entity_set}")
        current = existing.get(lines_nav)
        if current is None:
            current = list(self.pages(f"{path}/{lines_nav}"))
        if not mapper.same_lines(current, lines):
            for line in current:
                self.delete(f"{path}/{lines_nav}({line['id']})", etag=line.get("@odata.etag"), operation=f"delete {lines_nav}")
            for line in lines:
                self.create(f"{path}/{lines_nav}", line, operation=f"create {lines_nav}")
        return self._read_document(entity_set, existing["id"], lines_nav)

    def _post_document(self, entity_set: str, record: dict) -> dict:
        """Microsoft.NAV.post on a draft. If the post fails but the document is posted after all (a lost
        answer, another worker), that is success."""
        path = self.company_path(f"{entity_set}({record['id']})")
        try:
            self.bound_action(path, "post", etag=record.get("@odata.etag"), operation=f"post {entity_set}")
        except ConnectorError:
            again = self.get(path)
            if again.get("status") in DRAFT_STATUSES:
                raise
            return again
        return self.get(path)

    # --- ERPConnector: customers ---------------------------------------------------------------------
    def health(self) -> dict:
        company = self.get(f"companies({self.company_id})", operation="get company")
        return {"ok": True, "company_id": self.company_id, "company": company.get("displayName") or company.get("name")}

    def upsert_customer(self, *, customer: dict, external_id: str) -> CallResult:
        flat = mapper.flat_customer(customer)
        self.check_company(flat)
        currency = self.currency_code(flat["currency"]) if flat.get("currency") else None
        try:
            number = mapper.customer_number(external_id)
            body = mapper.customer_body(customer, number=number, currency_code=currency)
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc
        existing = self.find("customers", mapper.eq_filter("number", number))
        if existing is None:
            try:
                record = self.create(self.company_path("customers"), body, operation="create customers")
            except ConnectorError as exc:
                if exc.error_class != ErrorClass.DUPLICATE:
                    raise
                record = {}  # created meanwhile (another worker, or a create whose answer was lost)
            if record.get("id"):
                return CallResult(external_id=str(record["id"]), created=True, status_code=201, raw={"number": number})
            existing = self.find("customers", mapper.eq_filter("number", number))
            if existing is None:
                raise ConnectorError(ErrorClass.UNAVAILABLE, f"Business Central accepted customer {number} but it cannot be read back", system=self.system)
        changed = _changed(existing, {k: v for k, v in body.items() if k != "number"})
        if changed:
            self.patch(self.company_path(f"customers({existing['id']})"), changed, etag=existing.get("@odata.etag"), operation="update customers")
        return CallResult(external_id=str(existing["id"]), created=False, raw={"number": number})

    def get_customer(self, *, external_id: str) -> dict | None:
        record = self.find("customers", mapper.eq_filter("number", mapper.customer_number(external_id)))
        return None if record is None else mapper.customer_from_bc(record, external_id=external_id)

    # --- sales orders ------------------------------------------------------------------------------------
    def upsert_sales_order(self, *, order: dict, customer_id: str, external_id: str) -> CallResult:
        self.check_company(order)
        try:
            lines = mapper.sales_order_lines(order)
            header = mapper.sales_order_body(
                order,
                customer_id=customer_id,
                external_document_number=mapper.external_document_number(external_id),
                currency_code=self.currency_code(order.get("currency")),
            )
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc
        self._lines_with_items(lines)
        return self._upsert_document("salesOrders", "salesOrderLines", header=header, lines=lines, post=False)

    def get_sales_order(self, *, external_id: str) -> dict | None:
        record = self._find_document("salesOrders", "salesOrderLines", mapper.external_document_number(external_id))
        return None if record is None else mapper.sales_order_from_bc(record, record.get("salesOrderLines") or [], external_id=external_id)

    def close_sales_order(self, *, sales_order_id: str, external_id: str) -> CallResult:
        path = self.company_path(f"salesOrders({sales_order_id})")
        try:
            record = self.get(path)
            self.delete(path, etag=record.get("@odata.etag"), operation="delete salesOrders")
        except ConnectorError as exc:
            if exc.error_class != ErrorClass.NOT_FOUND:
                raise
            return CallResult(external_id=str(sales_order_id), created=False, raw={"already_closed": True})
        return CallResult(external_id=str(sales_order_id), created=False, raw={"deleted": True})

    def record_order_change(self, *, change: dict, sales_order_id: str, customer_id: str, external_id: str) -> CallResult:
        original = self._read_document("salesOrders", sales_order_id, "salesOrderLines")
        try:
            lines = mapper.change_order_lines(change, original_lines=original.get("salesOrderLines") or [])
            currency = self.currency_code(change["currency"]) if change.get("currency") else None
            header = mapper.change_order_body(
                change,
                original=original,
                customer_id=customer_id,
                external_document_number=mapper.external_document_number(external_id),
                currency_code=currency,
            )
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc
        self._lines_with_items(lines, prefix="changes")
        return self._upsert_document("salesOrders", "salesOrderLines", header=header, lines=lines, post=False)

    # --- invoices ------------------------------------------------------------------------------------------
    def upsert_invoice(self, *, invoice: dict, customer_id: str, external_id: str) -> CallResult:
        self.check_company(invoice)
        for i, line in enumerate(invoice.get("lines") or []):
            if not line.get("sku"):
                raise ConnectorError(
                    ErrorClass.MAPPING,
                    f"Invoice line {i + 1} ({line.get('description', '')!r}) has no SKU, so no Business Central item",
                    system=self.system,
                    field=f"lines[{i}].sku",
                )
        try:
            lines = mapper.invoice_lines(invoice, tax_item=self.tax_item)
            header = mapper.invoice_body(
                invoice,
                customer_id=customer_id,
                external_document_number=mapper.external_document_number(external_id),
                currency_code=self.currency_code(invoice.get("currency")),
            )
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc
        self._lines_with_items(lines, extra={self.tax_item: "tax"})
        return self._upsert_document("salesInvoices", "salesInvoiceLines", header=header, lines=lines, post=True)

    def get_invoice(self, *, external_id: str) -> dict | None:
        record = self._find_document("salesInvoices", "salesInvoiceLines", mapper.external_document_number(external_id))
        return None if record is None else mapper.invoice_from_bc(record, record.get("salesInvoiceLines") or [], external_id=external_id)

    # --- payments --------------------------------------------------------------------------------------------
    def payment_journal(self) -> dict:
        """The hub's customer payment journal (BUSINESS_CENTRAL_PAYMENT_JOURNAL), created when missing."""
        if self._journal is None:
            found = self.find("customerPaymentJournals", mapper.eq_filter("code", self.payment_journal_code))
            if found is None:
                try:
                    found = self.create(
                        self.company_path("customerPaymentJournals"),
                        {"code": self.payment_journal_code, "displayName": "Q2C Portal customer payments"},
                        operation="create customerPaymentJournals",
                    )
                except ConnectorError as exc:
                    if exc.error_class != ErrorClass.DUPLICATE:
                        raise
                    found = None
                if not (found or {}).get("id"):
                    found = self.find("customerPaymentJournals", mapper.eq_filter("code", self.payment_journal_code))
            if not found:
                raise ConnectorError(ErrorClass.UNAVAILABLE, f"The customer payment journal {self.payment_journal_code} cannot be read", system=self.system)
            self._journal = found
        return self._journal

    def posted_payment(self, document_number: str) -> list[dict]:
        """The G/L entries a posted payment left ([] if it is not posted)."""
        return list(
            self.pages(
                self.company_path("generalLedgerEntries"),
                params={"$filter": f"{mapper.eq_filter('documentNumber', document_number)} and documentType eq 'Payment'"},
                page_size=10,
                operation="find generalLedgerEntries",
            )
        )

    def upsert_payment(self, *, payment: dict, customer_id: str, invoice_id: str | None, external_id: str) -> CallResult:
        try:
            document_number = mapper.document_number(external_id)
            body = mapper.payment_body(
                payment,
                customer_id=customer_id,
                invoice_id=invoice_id,
                document_number=document_number,
                external_document_number=mapper.external_document_number(external_id),
            )
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc
        if self.posted_payment(document_number):
            return CallResult(external_id=document_number, created=False, raw={"posted": True})
        journal = self.payment_journal()
        journal_path = self.company_path(f"customerPaymentJournals({journal['id']})")
        line = self.find("customerPayments", mapper.eq_filter("documentNumber", document_number), within=f"customerPaymentJournals({journal['id']})")
        if line is None:
            line = self.create(f"{journal_path}/customerPayments", body, operation="create customerPayments")
        else:
            changed = _changed(line, body)
            if changed:
                line = self.patch(f"{journal_path}/customerPayments({line['id']})", changed, etag=line.get("@odata.etag"), operation="update customerPayments")
        try:
            # BC checks a bound action's ETag only when one is sent; the batch is shared, so none is
            self.request("POST", f"{journal_path}/Microsoft.NAV.post", operation="post customerPaymentJournals")
        except ConnectorError as exc:
            if self.posted_payment(document_number):  # posted after all: another worker posted the batch, or the answer was lost
                return CallResult(external_id=document_number, created=True, raw={"posted": True})
            if not exc.transient and line.get("id"):
                # an unpostable line would block every later post of the hub's batch: take it out again
                # (it never reached the ledger); the step fails with BC's reason and a retry writes it anew
                try:
                    self.delete(f"{journal_path}/customerPayments({line['id']})", etag=None, operation="delete customerPayments")
                except ConnectorError:
                    log.warning("could not remove unposted payment line %s from journal %s", document_number, self.payment_journal_code, exc_info=True)
            raise
        if not self.posted_payment(document_number):
            raise ConnectorError(
                ErrorClass.UNAVAILABLE, f"Business Central posted journal {self.payment_journal_code} without payment {document_number}", system=self.system
            )
        return CallResult(external_id=document_number, created=True, raw={"posted": True})

    def get_payment(self, *, external_id: str) -> dict | None:
        document_number = mapper.document_number(external_id)
        entries = self.posted_payment(document_number)
        if entries:
            return mapper.payment_from_gl_entries(entries, document_number=document_number)
        journal = self.payment_journal()
        line = self.find("customerPayments", mapper.eq_filter("documentNumber", document_number), within=f"customerPaymentJournals({journal['id']})")
        if line is None:
            return None
        return {
            "id": document_number,
            "document_number": document_number,
            "posted": False,
            "amount": mapper.money_str(-mapper.to_decimal(line.get("amount") or 0)),
        }

    # --- credit memos -------------------------------------------------------------------------------------------
    def upsert_credit_memo(self, *, credit_memo: dict, customer_id: str, external_id: str) -> CallResult:
        self.check_company(credit_memo)
        invoice_id = credit_memo.get("erp_invoice_id") or credit_memo.get("invoice_id")
        try:
            lines = mapper.credit_memo_lines(credit_memo, adjustment_item=self.adjustment_item)
            header = mapper.credit_memo_body(
                credit_memo,
                customer_id=customer_id,
                external_document_number=mapper.external_document_number(external_id),
                currency_code=self.currency_code(credit_memo.get("currency")),
                invoice_id=str(invoice_id) if invoice_id else None,
            )
        except mapper.MappingError as exc:
            raise self._mapping(exc) from exc
        self._lines_with_items(lines, extra={self.adjustment_item: "credit memo adjustment item"})
        return self._upsert_document("salesCreditMemos", "salesCreditMemoLines", header=header, lines=lines, post=True)

    def get_credit_memo(self, *, external_id: str) -> dict | None:
        record = self._find_document("salesCreditMemos", None, mapper.external_document_number(external_id))
        return None if record is None else mapper.credit_memo_from_bc(record, external_id=external_id)

    # --- reads ------------------------------------------------------------------------------------------------
    def query(self, *, q: str, limit: int = PAGE_SIZE) -> Iterator[dict]:
        """Every entity of an OData collection of the company, e.g.
        `customers?$filter=number eq 'C-1'&$select=id,number`, `limit` per page, following @odata.nextLink."""
        yield from self.pages(self.company_path(q.lstrip("/")), page_size=limit, operation=f"query {_set_of(q)}")

    def fetch_changes(self, *, object_type: str, since: datetime | None, limit: int = 2000) -> Iterator[dict]:
        """Raw events for entities of `object_type` (salesInvoices, salesOrders, salesCreditMemos,
        customers) modified at or after `since`, oldest first; the boundary instant is read again and
        the raw event id (id + lastModifiedDateTime) lets the inbox drop repeats."""
        if object_type not in POLLED_SETS:
            raise ConnectorError(
                ErrorClass.VALIDATION,
                f"Business Central polling supports {', '.join(POLLED_SETS)}, not {object_type!r}",
                system=self.system,
                field="object_type",
            )
        params = {"$orderby": "lastModifiedDateTime"}
        if since is not None:
            moment = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)
            params["$filter"] = f"lastModifiedDateTime ge {moment.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
        for count, record in enumerate(self.pages(self.company_path(object_type), params=params)):
            if count >= limit:
                return
            yield {
                "id": f"{object_type}:{record['id']}:{record.get('lastModifiedDateTime')}",
                "type": f"{object_type}.modified",
                "occurred_at": record.get("lastModifiedDateTime"),
                "payload": {**record, "entity_set": object_type},
            }

    def verify_webhook(self, body: bytes, headers) -> list[dict]:
        return webhook.raw_events(body, headers, client_state=self.webhook_client_state)

    def normalize(self, raw: dict) -> list[dict]:
        """A sales invoice that changed in BC → invoice.posted.v1 once it is posted (one envelope per
        invoice: its id is stable). A notification carries no record, so the invoice is read again."""
        entity_set, _, change = str(raw.get("type") or "").partition(".")
        if entity_set != "salesInvoices" or change == "deleted":
            return []
        payload = raw.get("payload") or {}
        if change == "modified":
            records = [payload]
        elif change == "collection":
            records = list(self.pages(self.url(self._resource_url(payload.get("resource") or ""))))
        else:
            try:
                records = [self.get(self.company_path(f"salesInvoices({payload['id']})"))] if payload.get("id") else []
            except ConnectorError as exc:
                if exc.error_class == ErrorClass.NOT_FOUND:
                    return []  # deleted since (a draft discarded): nothing was posted
                raise
        return [envelope for record in records if (envelope := self._posted_envelope(record))]

    def _resource_url(self, resource: str) -> str:
        """A notification's resource (`api/v2.0/companies(…)/salesInvoices?$filter=…`) as a URL."""
        tail = resource.split("api/v2.0/", 1)[-1]
        return f"{self.api_root}/{tail}"

    @staticmethod
    def _posted_envelope(record: dict) -> dict | None:
        if record.get("status") not in mapper.POSTED_INVOICE_STATUSES or not record.get("id"):
            return None
        data = {
            "invoice_number": record.get("number") or str(record["id"]),
            "erp_invoice_id": str(record["id"]),
            "posted_at": record.get("lastModifiedDateTime") or f"{record.get('postingDate')}T00:00:00Z",
            "erp_external_id": record.get("externalDocumentNumber"),
            "status": mapper.INVOICE_STATUS.get(record["status"], str(record["status"]).lower()),
            "total": mapper.money_str(record.get("totalAmountIncludingTax", 0)),
            "amount_remaining": mapper.money_str(record["remainingAmount"]) if record.get("remainingAmount") is not None else None,
            "currency": record.get("currencyCode"),
        }
        return {
            "id": f"business_central-invoice-{record['id']}-posted",
            "type": "invoice.posted.v1",
            "source": SYSTEM,
            "occurred_at": data["posted_at"],
            "data": {k: v for k, v in data.items() if v not in (None, "")},
        }

    # --- webhook subscriptions ------------------------------------------------------------------------------------
    def subscription_resource(self, entity_set: str) -> str:
        return f"/api/v2.0/{self.company_path(entity_set)}"

    def subscribe(self, *, notification_url: str, entity_set: str, client_state: str | None = None) -> dict:
        """POST /subscriptions: BC calls notification_url?validationToken=… before it answers."""
        body = {
            "notificationUrl": notification_url,
            "resource": self.subscription_resource(entity_set),
            "clientState": client_state or self.webhook_client_state,
        }
        return self.create("subscriptions", body, operation="create subscriptions")

    def renew_subscription(self, subscription_id: str) -> dict:
        """PATCH the subscription (If-Match): BC checks the handshake again and moves its expiry 3 days on."""
        path = f"subscriptions({mapper.odata_string(subscription_id)})"
        current = self.get(path, operation="get subscriptions")
        body = {k: current[k] for k in ("notificationUrl", "resource", "clientState") if k in current}
        return self.patch(path, body, etag=current.get("@odata.etag"), operation="renew subscriptions")

    def subscriptions(self) -> list[dict]:
        return list(self.pages("subscriptions", operation="list subscriptions"))

    def unsubscribe(self, subscription_id: str) -> None:
        path = f"subscriptions({mapper.odata_string(subscription_id)})"
        self.delete(path, etag="*", operation="delete subscriptions")


def _changed(current: dict, wanted: dict) -> dict:
    """The fields of `wanted` whose value differs from `current`'s (numbers compared as numbers,
    GUIDs and codes without regard to case)."""
    changed = {}
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, (int, float)) or hasattr(value, "as_tuple"):
            try:
                if have is not None and mapper.to_decimal(have) == mapper.to_decimal(value):
                    continue
            except mapper.MappingError:
                pass
        elif _fold(key, have if have is not None else "") == _fold(key, value):
            continue
        changed[key] = value
    return changed


CODE_FIELDS = frozenset({"number", "externalDocumentNumber", "documentNumber", "currencyCode", "code", "lineObjectNumber"})


def _fold(key: str, value) -> str:
    """Values as BC compares them: GUIDs and Code fields without regard to case, text as it is."""
    text = str(value)
    return text.lower() if key in CODE_FIELDS or key.endswith("Id") else text


def _set_of(path: str) -> str:
    """The entity set a path or URL names (for operation labels): …/salesInvoices(…)/… → salesInvoices."""
    tail = str(path).split("?", 1)[0].rstrip("/")
    for segment in reversed(tail.split("/")):
        name = segment.split("(", 1)[0]
        if name and not name.startswith(("companies", "Microsoft.NAV")) and name.isalpha():
            return name
    return "api"
