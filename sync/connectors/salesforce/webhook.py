"""Inbound Salesforce events: the relay's HMAC signature, checked, and its body split into raw events.

The relay (or any Flow/Apex callout) posts `{"events": [<CometD CDC message>, …]}` (or one
message, or a list of them) signed with
`X-Q2C-Signature: sha256=<hex HMAC-SHA256(raw body, webhook_secret)>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from sync.connectors.errors import ConnectorError

from . import mapper

SYSTEM = "salesforce"
SIGNATURE_HEADERS = ("x-q2c-signature", "http_x_q2c_signature")  # as sent, and as Django's META names it


def signature(body: bytes, secret: str) -> str:
    """The X-Q2C-Signature value the relay sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(body: bytes, headers: Mapping[str, str], *, secret: str) -> None:
    """Raise ConnectorError(auth) unless `headers` carry the relay's signature of exactly `body`."""
    sent = ""
    for name, value in headers.items():
        if name.lower() in SIGNATURE_HEADERS:
            sent = value
    if not secret:
        raise ConnectorError("auth", "no Salesforce webhook secret is configured", system=SYSTEM)
    if not sent or not hmac.compare_digest(sent.strip().encode(), signature(body, secret).encode()):
        raise ConnectorError("auth", "invalid or missing X-Q2C-Signature", system=SYSTEM, field="X-Q2C-Signature")


def raw_events(body: bytes, headers: Mapping[str, str], *, secret: str) -> list[dict]:
    """A verified relay delivery → raw events (ConnectorError auth for a bad signature, validation for a bad body)."""
    check_signature(body, headers, secret=secret)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConnectorError("validation", f"webhook body is not JSON: {exc}", system=SYSTEM) from exc
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        messages = document["events"]
    elif isinstance(document, list):
        messages = document
    elif isinstance(document, dict):
        messages = [document]
    else:
        raise ConnectorError("validation", "webhook body must be a JSON object", system=SYSTEM)
    raw = []
    for message in messages:
        if not isinstance(message, dict):
            raise ConnectorError("validation", "each event must be a JSON object", system=SYSTEM)
        if not mapper.header_of(message):
            message = mapper.platform_event_message(message)
        raw.append(mapper.raw_event(message))
    return raw
