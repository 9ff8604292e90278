"""Inbound Stripe webhooks: the signature checked by stripe-python itself, the event parsed as sent.

`stripe.WebhookSignature.verify_header` is the check inside `stripe.Webhook.construct_event`
(scheme `t=<unix>,v1=<hex>[,v1=…]`, any v1 matching in constant time, t within the
tolerance). We call it rather than `construct_event` because construct_event also turns
the body into StripeObjects, which does not keep the event as Stripe sent it: `*_decimal`
strings come back as `Decimal`s (the inbox stores JSON) and a `null` sub-object where a
hash is expected raises AttributeError. So the body is verified as the bytes that arrived,
and parsed once, here, into exactly the JSON Stripe signed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import stripe

from sync.connectors.errors import ConnectorError
from sync.models import ErrorClass

from . import mapper

SYSTEM = "stripe"
TOLERANCE = stripe.Webhook.DEFAULT_TOLERANCE  # seconds a signature stays valid (300): replays after that are refused
SIGNATURE_HEADERS = ("stripe-signature", "http_stripe_signature")  # as sent, and as Django's META names it


def check_signature(body: bytes, header: str | None, secret: str, *, tolerance: int = TOLERANCE) -> int:
    """Verify `header` (Stripe-Signature) for exactly `body`; returns its timestamp.
    Raises ConnectorError(auth) saying what is wrong."""
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise ConnectorError(ErrorClass.AUTH, f"Stripe webhook signature rejected: {exc.user_message or exc}", system=SYSTEM, status_code=400) from exc
    except UnicodeDecodeError as exc:  # Stripe signs UTF-8 JSON; anything else cannot be its event
        raise ConnectorError(ErrorClass.AUTH, "Stripe webhook signature rejected: the body is not UTF-8", system=SYSTEM, status_code=400) from exc
    return int(next(item[1] for item in (part.split("=", 2) for part in header.split(",")) if item[0] == "t"))  # as verify_header reads it


def raw_events(body: bytes, headers: Mapping[str, str], *, secret: str) -> list[dict]:
    """A verified delivery → its one raw event (ConnectorError auth for a bad signature, validation for a bad body)."""
    header = next((v for k, v in headers.items() if k.lower() in SIGNATURE_HEADERS), None)
    check_signature(body, header, secret)
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConnectorError(ErrorClass.VALIDATION, "webhook body is not JSON", system=SYSTEM) from exc
    if not isinstance(event, dict) or event.get("object") != "event" or not event.get("id") or not event.get("type"):
        raise ConnectorError(ErrorClass.VALIDATION, "webhook body is not a Stripe event", system=SYSTEM)
    return [{"id": event["id"], "type": event["type"], "occurred_at": mapper.ts_to_iso(event.get("created") or time.time()), "payload": event}]
