"""The one way a connector sends an HTTP request: timeouts, bounded Retry-After waits, call records.

NetSuite calls `send` directly; the Salesforce session under simple-salesforce and the HTTP
client hook under the official `stripe` library call it too, so all three vendors time out,
wait out a "slow down" and show up on the Connectors page the same way.

A short `Retry-After` is waited out inside the call (the vendor asked for it, and the step
keeps its place); a longer one is handed back as the final response, and the connector raises
a transient ConnectorError that the engine's retry schedule (`sync.retry`) picks up.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from sync.models import ConnectorCall, ErrorClass
from sync.retry import RetryPolicy

from .errors import STATUS_ONLY, CodeTable, ConnectorError, classify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitPolicy:
    """How long one call waits out a vendor's "slow down" before leaving it to the engine.

    `statuses`: answers that mean "try again shortly". `without_retry_after`: the wait when the
    answer names none (None: do not wait at all). `max_wait` bounds the total sleep of one call,
    `max_attempts` its requests.
    """

    statuses: frozenset[int] = frozenset({429})
    max_wait: float = 30.0
    max_attempts: int = 4
    without_retry_after: RetryPolicy | None = RetryPolicy(base=2.0, cap=10.0, jitter=0.0, max_attempts=None)  # 2, 4, 8 s

    def wait_before_next(self, attempt: int, retry_after: float | None, waited: float) -> float | None:
        """Seconds to sleep before attempt `attempt + 1`, or None to give the answer back as it is."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is None:
            if self.without_retry_after is None:
                return None
            retry_after = self.without_retry_after.delay(attempt)
        return None if waited + retry_after > self.max_wait else retry_after


DEFAULT_WAITS = WaitPolicy()  # 429 only, at most 30 s and 4 requests per call


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def record_call(system: str, operation: str, status_code: int | None, error_class: str, started: float) -> None:
    """One row per outbound call, for the Connectors page (rate, errors, latency)."""
    try:
        ConnectorCall.objects.create(
            system=system,
            operation=operation[:96],
            status_code=status_code,
            error_class=error_class or "",
            latency_ms=int((time.monotonic() - started) * 1000),
        )
    except Exception:  # noqa: BLE001 — telemetry must never break a sync
        log.warning("could not record connector call", exc_info=True)


def send(
    session: Any,
    method: str,
    url: str,
    *,
    system: str,
    operation: str,
    timeout: float,
    table: CodeTable = STATUS_ONLY,
    code_of: Callable[[requests.Response], str | Iterable[str]] | None = None,
    waits: WaitPolicy = DEFAULT_WAITS,
    label: str = "",
    **kwargs,
) -> requests.Response:
    """Send one request through `session` (anything with requests' `.request`); wait out
    `waits.statuses` as `Retry-After` asks (bounded) and try again. Every attempt is recorded,
    classified by `table` with the vendor code `code_of(response)` reads.

    Returns the final response, whatever its status: the connector turns a failure body into
    its ConnectorError. A timeout or an unreachable host raises ConnectorError (`timeout` /
    `unavailable`) directly, worded with `label` (default: the system).
    """
    label = label or system
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        started = time.monotonic()
        try:
            response = session.request(method, url, timeout=timeout, **kwargs)
        except requests.Timeout as exc:
            record_call(system, operation, None, ErrorClass.TIMEOUT, started)
            raise ConnectorError(ErrorClass.TIMEOUT, f"{label} did not answer within {timeout:.0f}s", system=system) from exc
        except requests.ConnectionError as exc:  # refused, reset, DNS, TLS
            record_call(system, operation, None, ErrorClass.UNAVAILABLE, started)
            raise ConnectorError(ErrorClass.UNAVAILABLE, f"cannot reach {label}: {exc.__class__.__name__}", system=system) from exc
        failed = response.status_code >= 300
        error_class = classify(response.status_code, code_of(response) if code_of else None, table).value if failed else ""
        record_call(system, operation, response.status_code, error_class, started)
        if response.status_code not in waits.statuses:
            return response
        delay = waits.wait_before_next(attempt, parse_retry_after(response.headers.get("Retry-After")), waited)
        if delay is None:
            return response  # a long wait belongs to the engine's retry schedule
        log.info("%s answered %s; waiting %.1fs before trying again", system, response.status_code, delay, extra={"system": system, "operation": operation})
        time.sleep(delay)
        waited += delay
