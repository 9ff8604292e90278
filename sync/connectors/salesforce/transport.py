"""HTTP plumbing under simple-salesforce: call telemetry, bounded Retry-After waits, and the
https→http rewrite that lets simple-salesforce (which always builds https:// URLs) talk to a
plain-HTTP instance such as the local sandbox.

In production the instance is https and no adapter is mounted: the session is a normal
`requests.Session` with telemetry and Retry-After handling.
"""

from __future__ import annotations

import json
import logging
import re
import time
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from sync.connectors.base import classify_status, parse_retry_after, record_call

log = logging.getLogger(__name__)


class HttpRewriteAdapter(HTTPAdapter):
    """Mounted on `https://host:port` of an `http://host:port` instance: sends over plain HTTP."""

    def send(self, request, **kwargs):
        if request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://"):]
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
    """A requests session that records every call and waits out 429/503 `Retry-After` (bounded).

    `max_wait` bounds the total sleep per call; a longer wait is left to the engine's retry
    schedule (the response is returned and the connector raises a transient ConnectorError).
    """

    def __init__(self, *, system: str = "salesforce", timeout: float = 30.0, max_wait: float = 30.0, max_attempts: int = 4):
        super().__init__()
        self.system = system
        self.timeout = timeout
        self.max_wait = max_wait
        self.max_attempts = max_attempts

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        operation = operation_name(method, url)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = super().request(method, url, *args, **kwargs)
            except requests.Timeout:
                record_call(self.system, operation, None, "timeout", started)
                raise
            except requests.ConnectionError:
                record_call(self.system, operation, None, "unavailable", started)
                raise
            error_class = "" if response.status_code < 300 else classify_status(response.status_code, error_code_of(response)).value
            record_call(self.system, operation, response.status_code, error_class, started)
            if response.status_code not in (429, 503) or attempt >= self.max_attempts:
                return response
            delay = parse_retry_after(response.headers.get("Retry-After"))
            if delay is None or waited + delay > self.max_wait:
                return response
            log.info("salesforce answered %s; retrying after %.1fs", response.status_code, delay, extra={"system": self.system, "operation": operation})
            time.sleep(delay)
            waited += delay


def response_json(response: requests.Response):
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return response.text
