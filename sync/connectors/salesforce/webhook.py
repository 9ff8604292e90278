"""Inbound Salesforce events: the relay's HMAC signature, checked, and its body split into raw events.

The relay (or any Flow/Apex callout) posts `{"events": [<CometD CDC message>, …]}` (or one
message, or a list of them) signed like Stripe signs its webhooks:

    X-Q2C-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(webhook_secret, "<t>." + raw body)>

The timestamp is part of what is signed, and a signature more than TOLERANCE seconds from the
hub's clock (either way) is refused, so a captured delivery cannot be replayed later. Several
`v1=` entries may be sent (one per secret while a secret is rotated); one must match. The old
untimed `sha256=<hex>` form is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from sync.connectors.errors import ConnectorError

from . import mapper

SYSTEM = "salesforce"
SIGNATURE_HEADERS = ("x-q2c-signature", "http_x_q2c_signature")  # as sent, and as Django's META names it


TOLERANCE = 300  # seconds a signature stays valid (as Stripe's)


def signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The X-Q2C-Signature value the relay sends for `body` at `timestamp` (default: now)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def check_signature(body: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int = TOLERANCE, now: float | None = None) -> int:
    """Raise ConnectorError(auth) unless `headers` carry the relay's fresh signature of exactly `body`; returns its timestamp."""
    sent = ""
    for name, value in headers.items():
        if name.lower() in SIGNATURE_HEADERS:
            sent = value
    if not secret:
        raise ConnectorError("auth", "no Salesforce webhook secret is configured", system=SYSTEM)
    if not sent:
        raise ConnectorError("auth", "missing X-Q2C-Signature", system=SYSTEM, field="X-Q2C-Signature")
    parts = [part.strip().split("=", 1) for part in sent.split(",")]
    stamps = [value for key, value in (p for p in parts if len(p) == 2) if key == "t"]
    candidates = [value for key, value in (p for p in parts if len(p) == 2) if key == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not candidates:
        raise ConnectorError("auth", "X-Q2C-Signature must be t=<unix seconds>,v1=<hex HMAC of '<t>.<body>'>", system=SYSTEM, field="X-Q2C-Signature")
    timestamp = int(stamps[0])
    expected = signature(body, secret, timestamp).split("v1=", 1)[1].encode()
    if not any(hmac.compare_digest(candidate.encode(), expected) for candidate in candidates):
        raise ConnectorError("auth", "invalid X-Q2C-Signature", system=SYSTEM, field="X-Q2C-Signature")
    skew = abs((time.time() if now is None else now) - timestamp)
    if skew > tolerance:
        raise ConnectorError("auth", f"X-Q2C-Signature timestamp is {int(skew)} s from now (tolerance {tolerance} s)", system=SYSTEM, field="X-Q2C-Signature")
    return timestamp


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
