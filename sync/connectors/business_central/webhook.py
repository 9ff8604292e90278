"""Business Central webhooks: the validationToken handshake, and change notifications without payload.

Subscribing (`POST …/api/v2.0/subscriptions {notificationUrl, resource, clientState}`) and renewing
(`PATCH …/subscriptions('{id}')`, If-Match) make BC call `notificationUrl?validationToken=…`; the
subscriber must answer 200 with exactly that token as the body, or the subscription is refused.
A subscription expires after three days unless renewed.

A notification carries no record, only what changed:

    {"value": [{"subscriptionId", "clientState", "expirationDateTime",
                "resource": "api/v2.0/companies(…)/salesInvoices(…)",
                "changeType": "created" | "updated" | "deleted" | "collection",
                "lastModifiedDateTime"}]}

so the connector re-reads the resource when it normalizes the event (`collection`: the resource
is a filtered collection URL to read). BC signs nothing; `clientState`, a secret set when
subscribing, is what proves a notification came from our subscription. BC retries for 36 hours
only when the subscriber answers 408, 429 or 5xx; any other failure deletes the subscription,
so the receiver answers a bad body with 400 only when it really is not BC's.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping

from sync.connectors.errors import ConnectorError
from sync.models import ErrorClass

SYSTEM = "business_central"
SUBSCRIPTION_LIFETIME_DAYS = 3
CHANGE_TYPES = frozenset({"created", "updated", "deleted", "collection"})
_RESOURCE = re.compile(
    r"(?:^|/)api/v2\.0/companies\((?P<company>[0-9a-fA-F-]{36})\)/(?P<entity_set>[A-Za-z]+)(?:\((?P<id>[0-9a-fA-F-]{36})\))?(?P<query>\?.*)?$"
)


def handshake(query: Mapping[str, str]) -> str | None:
    """The body to answer a validation request with (the validationToken), or None when the request
    is not a handshake. The caller answers 200 text/plain with it."""
    token = query.get("validationToken")
    return str(token) if token else None


def parse_resource(resource: str) -> dict:
    """`api/v2.0/companies(C)/salesInvoices(I)` → {company, entity_set, id, query}; {} if not one."""
    match = _RESOURCE.search(str(resource or "").strip())
    return {k: v for k, v in match.groupdict().items() if v} if match else {}


def raw_events(body: bytes, headers: Mapping[str, str], *, client_state: str) -> list[dict]:
    """A notification delivery → one raw event per notification. ConnectorError(auth) when a
    notification's clientState is not ours, (validation) when the body is not a BC notification."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConnectorError(ErrorClass.VALIDATION, "Business Central notification body is not JSON", system=SYSTEM) from exc
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise ConnectorError(ErrorClass.VALIDATION, "Business Central notification has no value list", system=SYSTEM)
    events = []
    for item in items:
        if not isinstance(item, dict) or item.get("changeType") not in CHANGE_TYPES or not item.get("resource") or not item.get("subscriptionId"):
            raise ConnectorError(ErrorClass.VALIDATION, "Business Central notification item is malformed", system=SYSTEM)
        if not client_state or not hmac.compare_digest(str(item.get("clientState") or ""), client_state):
            raise ConnectorError(ErrorClass.AUTH, "Business Central notification carries the wrong clientState", system=SYSTEM, status_code=400)
        target = parse_resource(item["resource"])
        entity_set = target.get("entity_set") or "unknown"
        events.append(
            {
                "id": f"bc:{item['subscriptionId']}:{item['resource']}:{item['changeType']}:{item.get('lastModifiedDateTime') or ''}"[:255],
                "type": f"{entity_set}.{item['changeType']}",
                "occurred_at": item.get("lastModifiedDateTime") or item.get("expirationDateTime"),
                "payload": {**{k: v for k, v in item.items() if k != "clientState"}, **target},
            }
        )
    return events
