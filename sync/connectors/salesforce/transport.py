"""How the connector speaks HTTP to Salesforce: its error codes, the requests session handed to
simple-salesforce, and the https→http rewrite that lets simple-salesforce (which always builds
https:// URLs) talk to a plain-HTTP instance such as the local sandbox.

Every request simple-salesforce (or the OAuth login) makes goes through
`sync.connectors.http.send`: timeouts, bounded `Retry-After` waits on 429/503, call records.
In production the instance is https and no adapter is mounted.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from sync.connectors.errors import CodeTable
from sync.connectors.http import WaitPolicy, send
from sync.models import ErrorClass

# Salesforce's error codes (the `errorCode` of its error array). A 300 (more than one record
# matches) and a 401 (session expired or invalid) mean what they say whatever the code.
ERROR_CODES = CodeTable(
    {
        ErrorClass.RATE_LIMIT: {"REQUEST_LIMIT_EXCEEDED"},  # the org's API request limit (403)
        ErrorClass.AUTH: {"INVALID_SESSION_ID", "INVALID_LOGIN", "INVALID_AUTH_HEADER"},
        ErrorClass.CONFLICT: {"ENTITY_IS_LOCKED", "UNABLE_TO_LOCK_ROW"},
        ErrorClass.DUPLICATE: {"DUPLICATE_VALUE", "DUPLICATES_DETECTED", "DUPLICATE_EXTERNAL_ID"},
    },
    decisive_statuses=frozenset({300, 401}),
)
RETRY_STATUSES = frozenset({429, 503})  # waited out in the call when Retry-After says how long


class HttpRewriteAdapter(HTTPAdapter):
    """Mounted on `https://host:port` of an `http://host:port` instance: sends over plain HTTP."""

    def send(self, request, **kwargs):
        if request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://") :]
        return super().send(request, **kwargs)


def mount_for_instance(session: requests.Session, instance_url: str) -> bool:
    """Mount the rewrite adapter when the instance speaks plain HTTP; True if mounted."""
    parts = urlsplit(instance_url)
    if parts.scheme != "http":
        return False
    port = parts.port or 80
    # simple-salesforce keeps the port unless it is 443 (https://host:port/…)
    prefix = f"https://{parts.hostname}:{port}" if port != 443 else f"https://{parts.hostname}"
    session.mount(prefix, HttpRewriteAdapter())
    if port == 80:
        session.mount(f"https://{parts.hostname}/", HttpRewriteAdapter())
    return True


def operation_name(method: str, url: str) -> str:
    """`PATCH sobjects/Order`, `GET query`, `POST oauth2/token` — one name per kind of call."""
    path = urlsplit(url).path
    m = re.search(r"/services/data/v[\d.]+/(.*)$", path)
    if m:
        parts = [p for p in m.group(1).split("/") if p]
        if parts[:1] == ["sobjects"]:
            parts = parts[:2]
        elif parts[:1] == ["composite"]:
            parts = parts[:3] if parts[1:2] == ["sobjects"] else parts[:1]
        else:
            parts = parts[:1]
        return f"{method.upper()} {'/'.join(parts) or 'resources'}"
    if path.endswith("/oauth2/token"):
        return f"{method.upper()} oauth2/token"
    return f"{method.upper()} {path[-60:]}"


def error_code_of(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode", ""))
    if isinstance(body, dict):
        return str(body.get("error", ""))
    return ""


class SalesforceSession(requests.Session):
    """A requests session whose every request goes through `http.send`: recorded, and 429/503
    with a `Retry-After` waited out (bounded).

    `max_wait` bounds the total sleep per call; a longer wait is left to the engine's retry
    schedule (the response is returned and the connector raises a transient ConnectorError).
    """

    def __init__(self, *, system: str = "salesforce", timeout: float = 30.0, max_wait: float = 30.0, max_attempts: int = 4):
        super().__init__()
        self.system = system
        self.timeout = timeout
        self.max_wait = max_wait
        self.max_attempts = max_attempts

    def request(self, method, url, **kwargs):
        operation = operation_name(method, url)
        waits = WaitPolicy(statuses=RETRY_STATUSES, max_wait=self.max_wait, max_attempts=self.max_attempts, without_retry_after=None)
        # super(): requests' own Session.request, so send does not come back here
        return send(
            super(),
            method,
            url,
            system=self.system,
            operation=operation,
            timeout=kwargs.pop("timeout", self.timeout),
            table=ERROR_CODES,
            code_of=error_code_of,
            waits=waits,
            label="Salesforce token endpoint" if operation.endswith("oauth2/token") else "Salesforce",
            **kwargs,
        )
