"""Secrets never leave the server: the one place that decides what is masked.

Everything shown or sent out — pages, API answers, CSV exports, log lines, alerts — passes its
payloads and free text through `redact` / `redact_text`. The stored originals stay as they are
(a replay or an approved payload edit needs them; `restore_redacted` puts them back where an
edited copy still says •••), but no screen, file or message shows them.

What is masked:
- by key name (case-insensitive, any nesting): authorization headers, cookies, API keys,
  passwords, secrets, tokens, signatures, credentials, private keys, card numbers / CVCs, bank
  account numbers / IBANs;
- by value, wherever it appears in a string: `Bearer …`, `Basic …`, `Token …` credentials,
  `key=value` / `"key": "value"` pairs whose key is secret-like, vendor keys (`sk_live_…`,
  `rk_test_…`, `whsec_…`, JWTs, AWS access key ids, GitHub and Slack tokens), card-like numbers
  (13–19 digits, spaces or dashes allowed, Luhn-valid) and valid IBANs.

Plain functions, no Django models: the sync engine, monitoring and the logging filter all use it.
"""

from __future__ import annotations

import json
import logging
import re

from stdnum import iban as _iban

MASK = "•••"

# a key is secret when its letters (lower case, separators dropped) contain one of these …
_SECRET_KEY_PARTS = (
    "authorization",
    "authentication",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "signingkey",
    "cookie",
    "signature",
    "credential",
    "sessionid",
    "cardnumber",
    "creditcard",
    "accountnumber",
    "bankaccount",
    "iban",
)
# … or is exactly one of these (short words that would match too much as parts)
_SECRET_KEYS_EXACT = {"auth", "pwd", "pin", "cvc", "cvv", "cvv2", "pan"}


def _key_letters(key) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


def is_secret_key(key) -> bool:
    k = _key_letters(key)
    return k in _SECRET_KEYS_EXACT or any(part in k for part in _SECRET_KEY_PARTS)


# --- patterns in free text -------------------------------------------------------------------------
_KEY_WORDS = r"(?:authorization|proxy[_-]?authorization|cookie|set[_-]?cookie|password|passwd|pwd|secret|client[_-]?secret|[\w-]*token|api[_-]?key|x[_-]api[_-]key|access[_-]?key|private[_-]?key|signature|credentials?)"
# key: value, key=value, "key": "value", 'key'='value' (the value may carry an auth scheme)
_PAIR = re.compile(r"(?i)(?P<key>\b" + _KEY_WORDS + r")(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>(?:(?:bearer|basic|token|digest)\s+)?[^\s\"'&,;}\]]+)")
# Authorization schemes: Bearer/Basic always carry a credential; "Token …" only when it looks like one
_SCHEME = re.compile(r"(?i)\b(?P<scheme>bearer|basic|digest)\s+(?!•)[A-Za-z0-9._~+/=:-]+")
_TOKEN_SCHEME = re.compile(r"(?i)\b(?P<scheme>token)\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}")
_VENDOR_KEYS = re.compile(
    r"\b(?:"
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+"  # Stripe secret / restricted keys
    r"|whsec_[A-Za-z0-9_]+"  # Stripe webhook signing secrets
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r")"
)
# 13–19 digits, single spaces or dashes between them, not part of a longer number, word or decimal
_CARD = re.compile(r"(?<![\w.])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![ -]?\d)(?!\w)(?!\.\d)")
# an IBAN: country, check digits, 11–30 more letters/digits, optionally in groups of four
_IBAN = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return MASK if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


def _iban_match(match: re.Match) -> str:
    text = match.group(0)
    # the greedy match may have swallowed a following word: try the longest valid prefix
    compact = text.replace(" ", "").upper()
    for end in range(len(compact), 14, -1):
        if _iban.is_valid(compact[:end]):
            # keep whatever followed the IBAN (count characters of `text` up to `end` compact ones)
            seen = 0
            for pos, ch in enumerate(text):
                if ch != " ":
                    seen += 1
                if seen == end:
                    return MASK + text[pos + 1 :]
    return text


def redact_text(text: str) -> str:
    """The string with every secret-looking part replaced by •••."""
    if not text or not isinstance(text, str):
        return text
    text = _PAIR.sub(lambda m: m.group("key") + m.group("sep") + MASK, text)
    text = _SCHEME.sub(lambda m: m.group("scheme") + " " + MASK, text)
    text = _TOKEN_SCHEME.sub(lambda m: m.group("scheme") + " " + MASK, text)
    text = _VENDOR_KEYS.sub(MASK, text)
    text = _CARD.sub(_card, text)
    text = _IBAN.sub(_iban_match, text)
    return text


def redact(value):
    """A copy of a JSON-like value with secret keys' values and secret-looking strings masked."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(k) and v not in (None, "", [], {}) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        if value.lower().startswith(("bearer ", "basic ")):
            return MASK
        return redact_text(value)
    return value


def restore_redacted(edited, original):
    """Where an edited document still shows what was redacted, the original value stands
    (editors never see secrets, and sending ••• back means "leave it as it was")."""
    if isinstance(edited, dict) and isinstance(original, dict):
        return {k: (original[k] if k in original and edited_unchanged(v, original[k]) else restore_redacted(v, original.get(k))) for k, v in edited.items()}
    if isinstance(edited, list) and isinstance(original, list):
        return [restore_redacted(v, original[i] if i < len(original) else None) for i, v in enumerate(edited)]
    if isinstance(edited, str) and isinstance(original, str) and MASK in edited and edited == redact_text(original):
        return original
    return edited


def edited_unchanged(edited, original) -> bool:
    return edited == MASK or (isinstance(edited, str) and MASK in edited and isinstance(original, str) and edited == redact_text(original))


def pretty(value) -> str:
    """Redacted, indented JSON for a <pre> block."""
    return json.dumps(redact(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)


class RedactingFilter(logging.Filter):
    """A logging filter (settings.LOGGING) that masks secrets in the message, its arguments,
    extra fields and the traceback before any handler formats the record."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the formatter to report
            return True
        record.msg, record.args = redact_text(message), None
        for name, value in list(vars(record).items()):
            if name not in self._STANDARD:
                setattr(record, name, MASK if is_secret_key(name) and value not in (None, "") else redact(value))
        if record.exc_info:
            # formatters print exc_text when exc_info is gone (logging's and python-json-logger's)
            record.exc_text = redact_text(record.exc_text or logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True
