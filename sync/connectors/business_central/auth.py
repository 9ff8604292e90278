"""Microsoft Entra OAuth 2.0 client credentials for Business Central, with the token cached.

The token request is a plain form POST (RFC 6749 §4.4), sent with `requests` through
`sync.connectors.http.send` so it times out and is recorded like every other call:

    POST {token_url}   (https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token)
    client_id=…&client_secret=…&grant_type=client_credentials&scope=https://api.businesscentral.dynamics.com/.default
    → 200 {"token_type": "Bearer", "expires_in": 3599, "access_token": "…"}

A token is reused until shortly before it expires (`refresh_leeway`: 5 minutes, or a quarter
of a short lifetime), then fetched again. A 401 from the API means the token is no longer
good (revoked, clock skew): the client calls `invalidate()` and asks once more.

Entra's errors are {"error": "invalid_client", "error_description": "AADSTS7000215: …"}:
a 400/401 is an `auth` failure (wrong secret, app not consented); 429 and 5xx are transient.
"""

from __future__ import annotations

import threading
import time

import requests

from sync.connectors.errors import STATUS_ONLY, ConnectorError, classify
from sync.connectors.http import WaitPolicy, parse_retry_after, send
from sync.models import ErrorClass

DEFAULT_SCOPE = "https://api.businesscentral.dynamics.com/.default"
MAX_LEEWAY = 300.0


class ClientCredentials(requests.auth.AuthBase):
    """A requests auth hook that puts a cached bearer token on every request."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str = DEFAULT_SCOPE,
        system: str = "business_central",
        timeout: float = 20.0,
        max_rate_limit_wait: float = 30.0,
        clock=time.monotonic,
    ):
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.system = system
        self.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self.clock = clock
        self.session = requests.Session()  # the token endpoint gets no bearer token of its own
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.fetched = 0  # tokens fetched by this instance (for the Connectors page and tests)

    @staticmethod
    def refresh_leeway(expires_in: float) -> float:
        return min(MAX_LEEWAY, max(0.0, expires_in) / 4)

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._refresh_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        started = self.clock()
        response = send(
            self.session,
            "POST",
            self.token_url,
            system=self.system,
            operation="oauth token",
            timeout=self.timeout,
            waits=WaitPolicy(max_wait=self.max_rate_limit_wait),
            label="Microsoft Entra ID",
            data={"client_id": self.client_id, "client_secret": self.client_secret, "grant_type": "client_credentials", "scope": self.scope},
            headers={"Accept": "application/json"},
        )
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if response.status_code != 200 or not body.get("access_token"):
            code = str(body.get("error") or "")
            error_class = classify(response.status_code, code, STATUS_ONLY)
            if response.status_code in (400, 401) or code in ("invalid_client", "unauthorized_client", "invalid_scope"):
                error_class = ErrorClass.AUTH
            elif response.status_code == 200:
                error_class = ErrorClass.UNAVAILABLE  # a 200 without a token: a proxy's page, not Entra
            raise ConnectorError(
                error_class,
                str(body.get("error_description") or f"The token endpoint answered {response.status_code}").splitlines()[0][:500],
                system=self.system,
                code=code,
                status_code=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                response={k: v for k, v in body.items() if k != "access_token"},
            )
        try:
            expires_in = float(body.get("expires_in") or 3599)
        except (TypeError, ValueError):
            expires_in = 3599.0
        self._token = str(body["access_token"])
        self._refresh_at = started + expires_in - self.refresh_leeway(expires_in)
        self.fetched += 1

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request
