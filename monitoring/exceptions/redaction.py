"""Secrets never reach the screen: payloads, responses and audit values are shown with
secret-looking values masked, and an edited payload keeps the original wherever it still says •••."""

from __future__ import annotations

import json

MASK = "•••"
_SECRET_WORDS = ("authorization", "token", "secret", "password", "passwd", "api_key", "apikey", "client_secret", "cookie", "private_key", "signature")


def is_secret_key(key) -> bool:
    k = str(key).lower().replace("-", "_")
    return any(word in k for word in _SECRET_WORDS)


def redact(value):
    """A copy with secret-looking keys (and bearer/basic credentials) replaced by •••."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(k) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and value.lower().startswith(("bearer ", "basic ")):
        return MASK
    return value


def restore_redacted(edited, original):
    """Where an edited document still says ••• the original value stands (editors never see secrets)."""
    if isinstance(edited, dict) and isinstance(original, dict):
        return {k: (original[k] if v == MASK and k in original else restore_redacted(v, original.get(k))) for k, v in edited.items()}
    if isinstance(edited, list) and isinstance(original, list):
        return [restore_redacted(v, original[i] if i < len(original) else None) for i, v in enumerate(edited)]
    return edited


def pretty(value) -> str:
    return json.dumps(redact(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)
