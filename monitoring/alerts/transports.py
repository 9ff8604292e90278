"""How an alert reaches a channel (`AlertChannel.kind` → a transport in TRANSPORTS): email
through Django's mail, and a generic JSON webhook signed with HMAC-SHA256 (Slack and Teams
incoming webhooks read its `text`). A transport raises on failure; the caller records it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests
from django.core.mail import send_mail
from django.utils import timezone

from monitoring.models import AlertChannel, SentAlert

SIGNATURE_HEADER = "X-Q2C-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` — the receiver recomputes it."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None) -> bool:
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


def send_webhook(channel: AlertChannel, alert: SentAlert) -> None:
    payload = {
        "text": f"{alert.subject}\n{alert.url}",  # Slack / Teams incoming webhooks show this
        "event": alert.event,
        "title": alert.subject,
        "body": alert.body,
        "url": alert.url,
        "data": alert.payload,
        "sent_at": timezone.now().isoformat(),
        "id": alert.pk,
    }
    body = json.dumps(payload, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Q2C-Portal-Alerts/1"}
    if channel.secret:
        headers[SIGNATURE_HEADER] = sign(channel.secret, body, int(time.time()))
    response = requests.post(channel.target, data=body, headers=headers, timeout=10)
    if response.status_code >= 400:
        raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:200]}")


def send_email(channel: AlertChannel, alert: SentAlert) -> None:
    recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
    send_mail(f"[Q2C] {alert.subject}", f"{alert.body}\n\nOpen: {alert.url}\n", None, recipients, fail_silently=False)


TRANSPORTS = {AlertChannel.Kind.EMAIL: send_email, AlertChannel.Kind.WEBHOOK: send_webhook}
