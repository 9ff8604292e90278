"""Token-Based Authentication (OAuth 1.0a, RFC 5849) as NetSuite checks it.

The sandbox's side is written out here on purpose — independent of the signing library the
connector uses — so a signing mistake in the client cannot be cancelled out by the same
mistake in the check:

    base string = METHOD & enc(URL without query) & enc(sorted(oauth params + query params))
    key         = enc(consumerSecret) & enc(tokenSecret)
    signature   = base64(HMAC-SHA256(key, base string))

`realm` (the account id) is sent in the header but is not signed (NetSuite docs + third-party
examples; API_REFERENCE marks it [U]). HMAC-SHA1 is refused (NetSuite stopped accepting it in
2023.1). Every failure is reported to the client as INVALID_LOGIN, as NetSuite does; the
precise reason goes to the sandbox log only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import re
import time
from datetime import timedelta
from urllib.parse import parse_qsl, quote, unquote

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from sandboxes.db import DB

from .models import OAuthNonce

log = logging.getLogger(__name__)

# ASSUMPTION: NetSuite does not document its timestamp tolerance; 5 minutes either way.
TIMESTAMP_WINDOW_SECONDS = 300
REQUIRED = ("oauth_consumer_key", "oauth_token", "oauth_signature_method", "oauth_timestamp", "oauth_nonce", "oauth_signature")
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"')


class InvalidLogin(Exception):
    """Why a request's TBA header was refused (logged, never shown to the client)."""


def enc(value: str) -> str:
    """RFC 5849 §3.6 percent-encoding: everything but ALPHA / DIGIT / - . _ ~."""
    return quote(str(value), safe="~")


def parse_header(header: str) -> dict[str, str]:
    if not header or not header[:6].lower() == "oauth ":
        raise InvalidLogin("no OAuth Authorization header")
    params = {name: unquote(value) for name, value in _PARAM.findall(header[6:])}
    if not params:
        raise InvalidLogin("empty OAuth header")
    return params


def base_string_uri(request: HttpRequest) -> str:
    scheme = request.scheme.lower()
    host = request.get_host().lower()
    if (scheme, host.rpartition(":")[2]) in (("http", "80"), ("https", "443")):
        host = host.rpartition(":")[0]
    # the path exactly as the client sent it (still percent-encoded)
    raw_path = request.META.get("RAW_URI", "").split("?", 1)[0] or quote(request.path, safe="/:@!$&'()*+,;=-._~")
    if "://" in raw_path:  # absolute-form request target
        raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
    return f"{scheme}://{host}{raw_path}"


def signature_base_string(request: HttpRequest, oauth_params: dict[str, str]) -> str:
    pairs = [(k, v) for k, v in oauth_params.items() if k not in ("realm", "oauth_signature")]
    pairs += parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)
    if (request.content_type or "").startswith("application/x-www-form-urlencoded"):
        pairs += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    normalized = "&".join(f"{k}={v}" for k, v in sorted((enc(k), enc(v)) for k, v in pairs))
    return "&".join((enc(request.method.upper()), enc(base_string_uri(request)), enc(normalized)))


def sign(base_string: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{enc(consumer_secret)}&{enc(token_secret)}"
    return base64.b64encode(hmac.new(key.encode(), base_string.encode(), hashlib.sha256).digest()).decode()


def verify_request(request: HttpRequest, *, account_id: str, consumer_key: str, consumer_secret: str, token_id: str, token_secret: str) -> None:
    """Raise InvalidLogin unless the request carries a valid, fresh, unreplayed TBA signature."""
    params = parse_header(request.META.get("HTTP_AUTHORIZATION", ""))
    missing = [name for name in REQUIRED if not params.get(name)]
    if missing:
        raise InvalidLogin(f"missing {', '.join(missing)}")
    if params.get("realm") != account_id:
        raise InvalidLogin(f"realm {params.get('realm')!r} is not account {account_id!r}")
    if params["oauth_signature_method"] != "HMAC-SHA256":
        raise InvalidLogin(f"signature method {params['oauth_signature_method']} is not accepted")
    if params.get("oauth_version", "1.0") != "1.0":
        raise InvalidLogin("oauth_version must be 1.0")
    if not hmac.compare_digest(params["oauth_consumer_key"], consumer_key):
        raise InvalidLogin("unknown consumer key")
    if not hmac.compare_digest(params["oauth_token"], token_id):
        raise InvalidLogin("unknown token")
    try:
        timestamp = int(params["oauth_timestamp"])
    except ValueError as exc:
        raise InvalidLogin("timestamp is not an integer") from exc
    if abs(time.time() - timestamp) > TIMESTAMP_WINDOW_SECONDS:
        raise InvalidLogin("timestamp outside the window")
    expected = sign(signature_base_string(request, params), consumer_secret, token_secret)
    if not hmac.compare_digest(expected, params["oauth_signature"]):
        raise InvalidLogin("signature mismatch")
    try:
        with transaction.atomic(using=DB):
            OAuthNonce.objects.create(consumer_key=consumer_key, token=token_id, nonce=params["oauth_nonce"][:255], timestamp=timestamp)
    except IntegrityError as exc:
        raise InvalidLogin("nonce already used") from exc
    if random.random() < 0.02:  # forget nonces that can no longer pass the timestamp check
        OAuthNonce.objects.filter(seen_at__lt=timezone.now() - timedelta(seconds=3 * TIMESTAMP_WINDOW_SECONDS)).delete()
