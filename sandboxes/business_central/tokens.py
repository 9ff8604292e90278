"""The sandbox's Microsoft Entra token endpoint (client credentials) and the bearer check of the API.

    POST /{tenant}/oauth2/v2.0/token   (form) client_id, client_secret, grant_type=client_credentials,
                                       scope=https://api.businesscentral.dynamics.com/.default
    → 200 {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "<JWT>"}

Errors are Entra's: {"error": "invalid_client" | "invalid_scope" | "unsupported_grant_type" |
"invalid_request", "error_description": "AADSTS…: …", "error_codes": [...], "timestamp", "trace_id",
"correlation_id"}. Tokens are HS256 JWTs signed with the sandbox's SECRET_KEY (tid, appid, aud,
iat, exp, roles), so every sandbox worker checks them without shared state; the lifetime and a
revocation instant come from SandboxSettings. A missing, bad, expired or revoked token on the
API is 401 Authentication_InvalidCredentials with a WWW-Authenticate challenge, as BC answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from .errors import BCError
from .models import SandboxSettings, TokenGrant

SCOPE = "https://api.businesscentral.dynamics.com/.default"
AUDIENCE = "https://api.businesscentral.dynamics.com"


def sandbox_settings() -> SandboxSettings:
    return SandboxSettings.objects.filter(name="business_central").first() or SandboxSettings()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key() -> bytes:
    return hashlib.sha256(f"business-central-sandbox-token:{settings.SECRET_KEY}".encode()).digest()


def issue(client_id: str, tenant: str, lifetime: int) -> tuple[str, int]:
    now = int(time.time())
    header = {"typ": "JWT", "alg": "HS256", "kid": "sandbox"}
    claims = {
        "aud": AUDIENCE,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": client_id,
        "tid": tenant,
        "roles": ["API.ReadWrite.All"],
        "jti": uuid.uuid4().hex,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(_key(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}", now + lifetime


def _unauthorized(tenant: str) -> BCError:
    return BCError(
        401,
        "Authentication_InvalidCredentials",
        "The server has rejected the client credentials.",
        {"WWW-Authenticate": f'Bearer authorization_uri="https://login.microsoftonline.com/{tenant}/oauth2/authorize", resource_id="{AUDIENCE}"'},
    )


def verify(request: HttpRequest, tenant: str) -> dict:
    """The claims of the request's bearer token; BCError 401 when there is none good."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token.count(".") != 2:
        raise _unauthorized(tenant)
    head, body, signature = token.split(".")
    expected = hmac.new(_key(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise _unauthorized(tenant)
        claims = json.loads(_unb64(body))
    except (ValueError, TypeError):
        raise _unauthorized(tenant) from None
    now = time.time()
    valid_after = sandbox_settings().tokens_valid_after
    if (
        claims.get("exp", 0) <= now
        or claims.get("aud") != AUDIENCE
        or claims.get("tid") != tenant
        or (valid_after is not None and claims.get("iat", 0) < int(valid_after.timestamp()))  # to the second, as iat is
    ):
        raise _unauthorized(tenant)
    return claims


def _entra_error(status: int, error: str, code: int, description: str) -> JsonResponse:
    now = datetime.now(UTC)
    return JsonResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {uuid.uuid4()}\r\nCorrelation ID: {uuid.uuid4()}\r\nTimestamp: {now:%Y-%m-%d %H:%M:%SZ}",
            "error_codes": [code],
            "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status=status,
    )


@csrf_exempt
def token_view(request: HttpRequest, tenant: str) -> HttpResponse:
    config = settings.CONNECTORS["business_central"]
    if request.method != "POST":
        return _entra_error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.")
    if tenant != config["tenant_id"]:
        return _entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.")
    form = request.POST
    if form.get("grant_type") != "client_credentials":
        return _entra_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
    if form.get("client_id") != config["client_id"]:
        return _entra_error(
            400, "unauthorized_client", 700016, f"Application with identifier '{form.get('client_id', '')}' was not found in the directory '{tenant}'."
        )
    if not hmac.compare_digest(str(form.get("client_secret", "")), str(config["client_secret"])):
        return _entra_error(
            401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value."
        )
    if form.get("scope") != SCOPE:
        return _entra_error(
            400,
            "invalid_scope",
            70011,
            f"The provided request must include a 'scope' input parameter. The provided value for scope '{form.get('scope', '')}' is not valid.",
        )
    lifetime = sandbox_settings().token_lifetime_seconds
    token, expires = issue(form["client_id"], tenant, lifetime)
    now = timezone.now()
    TokenGrant.objects.create(client_id=form["client_id"], issued_at=now, expires_at=now + timedelta(seconds=lifetime))
    return JsonResponse({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token})
