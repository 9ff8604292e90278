"""Salesforce CRM connector: OAuth (client credentials or JWT bearer) against a configurable
token URL, then simple-salesforce for the REST API, with Salesforce errors classified into
ConnectorError, one re-login on INVALID_SESSION_ID, and bounded Retry-After waits.

Errors are classified by `transport.ERROR_CODES` through the one classifier
(`sync.connectors.errors.classify`); every request goes through `sync.connectors.http.send`.

Inbound: the relay (or any Flow/Apex callout) posts `{"events": [<CometD CDC message>, …]}`
signed with `X-Q2C-Signature: t=<unix>,v1=<hex HMAC-SHA256(webhook_secret, "<t>." + raw body)>` (300 s tolerance, webhook.py);
`webhook.py` checks it and splits it into raw events. `normalize` (in a worker) drops echoes
of our own writes and queries what a change event leaves out. `fetch_changes` polls with SOQL
and yields raw events of the same shape, so one `normalize` serves both paths.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from django.conf import settings
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from sync.connectors.errors import ConnectorError, classify
from sync.connectors.http import parse_retry_after
from sync.connectors.roles import CallResult, CRMConnector

from . import mapper, webhook
from .transport import ERROR_CODES, SalesforceSession, mount_for_instance

log = logging.getLogger(__name__)

SYSTEM = "salesforce"
ORDER_FIELDS = [
    "Id",
    "OrderNumber",
    "AccountId",
    "OpportunityId",
    "ContractId",
    "EffectiveDate",
    "EndDate",
    "Status",
    "Type",
    "CurrencyIsoCode",
    "TotalAmount",
    "Legal_Entity__c",
    "Q2C_Status__c",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "Account.Name",
    "Account.Billing_Email__c",
    "Account.Tax_Id__c",
    "Account.Segment__c",
    "Account.OwnerId",
    "Account.BillingCountry",
    "Account.Legal_Entity__c",
    "Account.CurrencyIsoCode",
    "Account.ERP_Customer_Id__c",
    "Account.Billing_Customer_Id__c",
    "Opportunity.IsWon",
    "Opportunity.CloseDate",
    "Opportunity.StageName",
    "Contract.ContractTerm",
    "Contract.StartDate",
    "Contract.EndDate",
    "Contract.SBQQ__Order__r.OrderNumber",
]
ITEM_FIELDS = [
    "Id",
    "OrderId",
    "Quantity",
    "UnitPrice",
    "TotalPrice",
    "Product2.ProductCode",
    "Product2.Name",
    "Product2.Family",
    "Product2.SBQQ__ChargeType__c",
    "Product2.SBQQ__BillingFrequency__c",
]
ACCOUNT_FIELDS = [
    "Id",
    "Name",
    "Billing_Email__c",
    "Tax_Id__c",
    "Segment__c",
    "OwnerId",
    "BillingCountry",
    "Legal_Entity__c",
    "CurrencyIsoCode",
    "Payment_Terms__c",
    "ERP_Customer_Id__c",
    "Billing_Customer_Id__c",
    "SystemModstamp",
    "CreatedDate",
    "LastModifiedDate",
]
CONTRACT_FIELDS = [
    "Id",
    "AccountId",
    "Status",
    "StartDate",
    "EndDate",
    "ContractTerm",
    "CurrencyIsoCode",
    "Description",
    "SBQQ__Order__c",
    "SBQQ__Order__r.OrderNumber",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
]
POLL_FIELDS = {
    "Order": [
        "Id",
        "OrderNumber",
        "Type",
        "Status",
        "AccountId",
        "OpportunityId",
        "ContractId",
        "CreatedDate",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
    ],
    "Account": ACCOUNT_FIELDS + ["LastModifiedById"],
    "Opportunity": [
        "Id",
        "Name",
        "AccountId",
        "StageName",
        "IsWon",
        "IsClosed",
        "CloseDate",
        "Amount",
        "CurrencyIsoCode",
        "CreatedDate",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
    ],
    "Contract": ["Id", "AccountId", "Status", "ContractTerm", "StartDate", "EndDate", "CreatedDate", "LastModifiedDate", "LastModifiedById", "SystemModstamp"],
}


def error_from_salesforce(exc: SalesforceError) -> ConnectorError:
    """A simple-salesforce exception (status + JSON error array) → ConnectorError."""
    content = getattr(exc, "content", None)
    status = getattr(exc, "status", None) or 0
    first = content[0] if isinstance(content, list) and content and isinstance(content[0], dict) else {}
    code = str(first.get("errorCode") or first.get("statusCode") or "")
    message = str(first.get("message") or (content if isinstance(content, str) else "") or f"Salesforce answered HTTP {status}")
    fields = first.get("fields") or []
    if status == 300:
        message = f"more than one Salesforce record matches: {', '.join(map(str, content or []))[:300]}"
    error_class = classify(status, code, ERROR_CODES)
    return ConnectorError(
        error_class,
        message,
        system=SYSTEM,
        field=str(fields[0]) if fields else "",
        code=code,
        status_code=status or None,
        response=content if content is not None else {},
    )


class SalesforceConnector(CRMConnector):
    system = SYSTEM

    def __init__(
        self,
        *,
        token_url: str,
        instance_url: str,
        api_version: str = "60.0",
        client_id: str,
        client_secret: str = "",
        username: str = "",
        private_key_file: str = "",
        webhook_secret: str = "",
        jwt_audience: str = "",
        timeout: float = 30.0,
        max_rate_limit_wait: float = 30.0,
    ):
        self.token_url = token_url
        self.configured_instance_url = instance_url.rstrip("/")
        self.api_version = api_version
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.private_key_file = private_key_file
        self.webhook_secret = webhook_secret
        self.jwt_audience = jwt_audience or ("https://test.salesforce.com" if "test.salesforce.com" in token_url else "https://login.salesforce.com")
        self.timeout = timeout
        self.session = SalesforceSession(system=SYSTEM, timeout=timeout, max_wait=max_rate_limit_wait)
        # changeOrigin carries this client id for our writes, which is how echoes are dropped
        self.session.headers["Sforce-Call-Options"] = f"client={client_id}"
        self._sf: Salesforce | None = None
        self._lock = threading.RLock()
        self.instance_url = ""
        self.identity = ""
        self.logins = 0

    @classmethod
    def from_settings(cls) -> SalesforceConnector:
        c = settings.CONNECTORS["salesforce"]
        return cls(
            token_url=c["token_url"],
            instance_url=c["instance_url"],
            api_version=c.get("api_version", "60.0"),
            client_id=c["client_id"],
            client_secret=c.get("client_secret", ""),
            username=c.get("username", ""),
            private_key_file=c.get("private_key_file", ""),
            webhook_secret=c.get("webhook_secret", ""),
            jwt_audience=c.get("jwt_audience", ""),
            timeout=float(c.get("timeout", 30)),
            max_rate_limit_wait=float(c.get("max_rate_limit_wait", 30)),
        )

    # --- auth -------------------------------------------------------------------------------
    def _assertion(self) -> str:
        with open(self.private_key_file, "rb") as handle:
            key = handle.read()
        now = datetime.now(UTC)
        claims = {"iss": self.client_id, "sub": self.username, "aud": self.jwt_audience, "exp": int((now + timedelta(minutes=3)).timestamp())}
        return jwt.encode(claims, key, algorithm="RS256")

    def login(self) -> dict:
        """Get an access token (JWT bearer when a private key is configured, else client
        credentials) and build the simple-salesforce client on it."""
        if self.private_key_file:
            form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self._assertion()}
        else:
            form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}
        response = self.session.post(self.token_url, data=form, headers={"Accept": "application/json"})  # raises ConnectorError on timeout/unreachable
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            if response.status_code in (400, 401, 403):
                description = body.get("error_description") or body.get("error") if isinstance(body, dict) else ""
                raise ConnectorError(
                    "auth",
                    f"Salesforce login failed: {description or response.status_code}",
                    system=SYSTEM,
                    code=str(body.get("error", "")) if isinstance(body, dict) else "",
                    status_code=response.status_code,
                    response=body,
                )
            error_class = classify(response.status_code, None, ERROR_CODES)
            raise ConnectorError(
                error_class,
                f"Salesforce token endpoint answered HTTP {response.status_code}",
                system=SYSTEM,
                status_code=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        self.instance_url = (body.get("instance_url") or self.configured_instance_url).rstrip("/")
        self.identity = body.get("id", "")
        mount_for_instance(self.session, self.instance_url)
        self._sf = Salesforce(instance_url=self.instance_url, session_id=body["access_token"], version=self.api_version, session=self.session)
        self.logins += 1
        return body

    @property
    def sf(self) -> Salesforce:
        with self._lock:
            if self._sf is None:
                self.login()
            return self._sf

    def call(self, fn: Callable[[Salesforce], Any]) -> Any:
        """Run fn(sf); re-login once on INVALID_SESSION_ID; errors become ConnectorError
        (a timeout or an unreachable instance already is one, raised by the session)."""
        for attempt in (1, 2):
            sf = self.sf
            try:
                return fn(sf)
            except SalesforceExpiredSession as exc:
                content = exc.content if isinstance(exc.content, list) else []
                if attempt == 1 and content and content[0].get("errorCode") == "INVALID_SESSION_ID":
                    log.info("salesforce session expired; logging in again")
                    with self._lock:
                        if self._sf is sf:
                            self._sf = None
                    continue
                raise error_from_salesforce(exc) from exc
            except SalesforceError as exc:
                raise error_from_salesforce(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # --- reads ------------------------------------------------------------------------------
    def health(self) -> dict:
        limits = self.call(lambda sf: sf.restful("limits"))
        usage = getattr(self._sf, "api_usage", {}) or {}
        api = usage.get("api-usage")
        return {
            "instance_url": self.instance_url,
            "api_usage": f"{api.used}/{api.total}" if api else None,
            "daily_api_requests": limits.get("DailyApiRequests"),
        }

    def query(self, soql: str) -> Iterator[dict]:
        """All rows of a SOQL query, page by page (nextRecordsUrl)."""
        page = self.call(lambda sf: sf.query(soql))
        while True:
            yield from page.get("records", [])
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            next_url = page["nextRecordsUrl"]
            page = self.call(lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True))

    def get_order(self, order_id: str) -> tuple[dict | None, list[dict]]:
        rows = list(self.query(f"SELECT {', '.join(ORDER_FIELDS)} FROM Order WHERE Id = {mapper.soql_quote(order_id)}"))
        if not rows:
            return None, []
        items = list(self.query(f"SELECT {', '.join(ITEM_FIELDS)} FROM OrderItem WHERE OrderId = {mapper.soql_quote(rows[0]['Id'])} ORDER BY CreatedDate"))
        return rows[0], items

    # --- writes -----------------------------------------------------------------------------
    def set_status(self, *, object_type: str, external_id: str, fields: dict, idempotency_key: str) -> CallResult:
        """PATCH the record (by Id, or `Field__c/value` to upsert by an external id field).
        A PATCH that sets the same values again leaves the same record, so retries are safe;
        Salesforce's REST API has no idempotency-key header, so the key is only logged."""
        sftype_name = object_type
        if "/" in external_id:
            field, _, value = external_id.partition("/")
            response = self.call(lambda sf: getattr(sf, sftype_name).upsert(f"{field}/{value}", fields, raw_response=True))
            body = response.json() if response.status_code != 204 else {}
            return CallResult(
                external_id=body.get("id", value), created=body.get("created", response.status_code == 201), status_code=response.status_code, raw=body
            )
        status = self.call(lambda sf: getattr(sf, sftype_name).update(external_id, fields))
        log.debug("salesforce %s %s updated (key %s)", object_type, external_id, idempotency_key)
        return CallResult(external_id=external_id, created=False, status_code=status)

    # --- inbound ----------------------------------------------------------------------------
    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[dict]:
        return webhook.raw_events(body, headers, secret=self.webhook_secret)

    def normalize(self, raw: dict) -> list[dict]:
        message = raw.get("payload") or {}
        header = mapper.header_of(message)
        if mapper.is_echo(message, self.client_id):
            return []
        entity, change = header.get("entityName"), (header.get("changeType") or "").upper()
        record_ids = header.get("recordIds") or []
        polled = message.get("q2c_source") == "poll"
        if change.startswith("GAP_"):
            change = change[4:]  # a gap event says "something changed": re-read the record
        out: list[dict] = []
        for record_id in record_ids:
            if record_id.endswith("*"):
                continue
            if entity == "Order" and (change == "CREATE" or polled):
                out.extend(self._order_events(record_id))
            elif entity == "Opportunity" and change in ("UPDATE", "CREATE") and self._became_won(message, polled):
                for row in self.query(f"SELECT Id FROM Order WHERE OpportunityId = {mapper.soql_quote(record_id)} ORDER BY CreatedDate"):
                    out.extend(self._order_events(row["Id"], allow_empty=True))
            elif entity == "Account" and change in ("CREATE", "UPDATE", "UNDELETE"):
                out.extend(self._account_events(record_id, raw))
            elif entity == "Contract" and change in ("UPDATE",) or (entity == "Contract" and polled):
                out.extend(self._contract_events(record_id, message, raw))
        return out

    @staticmethod
    def _became_won(message: dict, polled: bool) -> bool:
        payload = message.get("payload") or {}
        header = mapper.header_of(message)
        if polled:
            return payload.get("IsWon") is True
        return payload.get("IsWon") is True and ("IsWon" in (header.get("changedFields") or []) or header.get("changeType") == "CREATE")

    def _envelope(self, kind: str, key: str, occurred_at: str, data: dict) -> dict:
        return {"id": f"salesforce:{kind}:{key}", "type": kind, "source": "salesforce", "occurred_at": occurred_at, "data": data}

    def _order_events(self, order_id: str, allow_empty: bool = False) -> list[dict]:
        order, items = self.get_order(order_id)
        if order is None:
            return []
        kind = order.get("Type") or "New"
        if kind == "Amendment":
            original = ((order.get("Contract") or {}).get("SBQQ__Order__r") or {}).get("OrderNumber")
            if not original:
                raise mapper.mapping_error(f"amendment {order['OrderNumber']} has no original order on its contract", "ContractId")
            contract_items = list(
                self.query(
                    f"SELECT {', '.join(ITEM_FIELDS)}, Order.Type, Order.CreatedDate FROM OrderItem WHERE Order.ContractId = {mapper.soql_quote(order['ContractId'])} "
                    f"AND Order.Type IN ('New', 'Amendment') AND Order.CreatedDate <= {mapper.sf_datetime(mapper.parse_datetime(order['CreatedDate']))} ORDER BY CreatedDate"
                )
            )
            data = mapper.subscription_amended(order, items, contract_items, original)
            return [self._envelope("subscription.amended.v1", order["Id"], data["requested_at"], data)]
        if kind == "Renewal":
            original = ((order.get("Contract") or {}).get("SBQQ__Order__r") or {}).get("OrderNumber")
            if not original:
                raise mapper.mapping_error(f"renewal {order['OrderNumber']} has no original order on its contract", "ContractId")
            data = mapper.subscription_renewed(order, items, original)
            return [self._envelope("subscription.renewed.v1", order["Id"], mapper.iso(order["CreatedDate"]), data)]
        opportunity = order.get("Opportunity")
        if opportunity is not None and opportunity.get("IsWon") is False:
            return []  # an order on a deal that is not won (yet): nothing to fulfil
        if not items and allow_empty:
            return []
        data = mapper.order_closed_won(order, items)
        return [self._envelope("order.closed_won.v1", order["Id"], data["closed_won_at"], data)]

    def _account_events(self, account_id: str, raw: dict) -> list[dict]:
        rows = list(self.query(f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM Account WHERE Id = {mapper.soql_quote(account_id)}"))
        if not rows:
            return []
        stamp = mapper.parse_datetime(rows[0]["SystemModstamp"])
        data = mapper.customer_upserted(rows[0])
        return [self._envelope("customer.upserted.v1", f"{account_id}:{mapper.epoch_ms(stamp)}", stamp.isoformat(), data)]

    def _contract_events(self, contract_id: str, message: dict, raw: dict) -> list[dict]:
        payload = message.get("payload") or {}
        header = mapper.header_of(message)
        if payload.get("Status") != "Terminated" or not (message.get("q2c_source") == "poll" or "Status" in (header.get("changedFields") or [])):
            return []
        rows = list(self.query(f"SELECT {', '.join(CONTRACT_FIELDS)} FROM Contract WHERE Id = {mapper.soql_quote(contract_id)}"))
        if not rows or rows[0].get("Status") != "Terminated":
            return []
        contract = rows[0]
        order_number = (contract.get("SBQQ__Order__r") or {}).get("OrderNumber")
        if not order_number:
            raise mapper.mapping_error(f"contract {contract_id} has no originating order", "SBQQ__Order__c")
        items = list(self.query(f"SELECT {', '.join(ITEM_FIELDS)} FROM OrderItem WHERE OrderId = {mapper.soql_quote(contract['SBQQ__Order__c'])}"))
        lines = [mapper.line_of(item) for item in items]
        data = mapper.subscription_cancelled(contract, order_number, raw.get("occurred_at") or mapper.iso(contract["LastModifiedDate"]), lines)
        return [self._envelope("subscription.cancelled.v1", contract_id, data["requested_at"], data)]

    def fetch_changes(self, *, object_type: str, since: datetime | None, limit: int = 2000) -> Iterator[dict]:
        """Records of object_type modified after `since`, oldest first, as CDC-shaped raw events
        (marked `q2c_source: poll`; changeType CREATE when never modified since creation)."""
        fields = POLL_FIELDS.get(object_type, ["Id", "CreatedDate", "LastModifiedDate", "LastModifiedById", "SystemModstamp"])
        where = f" WHERE SystemModstamp > {mapper.sf_datetime(since)}" if since else ""
        soql = f"SELECT {', '.join(fields)} FROM {object_type}{where} ORDER BY SystemModstamp, Id LIMIT {int(limit)}"
        for row in self.query(soql):
            record = {k: v for k, v in row.items() if k != "attributes"}
            stamp = mapper.parse_datetime(record["SystemModstamp"])
            created = record.get("CreatedDate") == record.get("LastModifiedDate")
            header = {
                "entityName": object_type,
                "recordIds": [record["Id"]],
                "changeType": "CREATE" if created else "UPDATE",
                "changeOrigin": "",
                "transactionKey": "",
                "sequenceNumber": 0,
                "commitTimestamp": mapper.epoch_ms(stamp),
                "commitNumber": 0,
                "commitUser": record.get("LastModifiedById", ""),
                "changedFields": [],
                "nulledFields": [],
                "diffFields": [],
            }
            message = {"schema": None, "payload": {"ChangeEventHeader": header, **record}, "event": {"replayId": None}, "q2c_source": "poll"}
            event = mapper.raw_event(message)
            event["id"] = f"{object_type}:poll:{record['Id']}:{header['commitTimestamp']}"
            yield event
