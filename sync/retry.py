"""When to try a failed call again, and how long to wait first: one RetryPolicy for every retry.

Flow steps (each `Step` carries one: its system's unless it says otherwise), the outbox
publisher, inbound-event processing and the in-call Retry-After fallback of
`sync.connectors.http` all wait by the same formula:

    delay(attempt) = min(cap, base × 2^(attempt − 1)) × random factor in [1 − jitter, 1 + jitter],
                     and never sooner than the system's Retry-After.

The numbers come from `settings.SYNC_RETRY` (environment: Q2C_RETRY_BASE_SECONDS,
Q2C_RETRY_CAP_SECONDS, Q2C_MAX_ATTEMPTS, Q2C_MAX_ATTEMPTS_<SYSTEM>). This module imports
nothing from the rest of the product, so anything may use it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings

_MAX_DOUBLINGS = 62  # 2^62 × any sane base is far past any cap; keeps the float finite after many attempts


class _Failure(Protocol):
    error_class: str
    transient: bool


@dataclass(frozen=True)
class RetryPolicy:
    """`base`: seconds after the first failure (before jitter); `cap`: the longest wait (before jitter);
    `jitter`: ± fraction of randomness; `max_attempts`: attempts in all, the first included (None: no limit);
    `also_retry`: error classes retried although not transient, each with its own attempt limit."""

    base: float = 5.0
    cap: float = 900.0
    jitter: float = 0.5
    max_attempts: int | None = 6
    also_retry: Mapping[str, int] = field(default_factory=dict)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after attempt number `attempt` (1, 2, …) failed."""
        delay = min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), _MAX_DOUBLINGS))
        if self.jitter:
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return max(delay, retry_after or 0.0)

    def allows_another(self, attempts: int) -> bool:
        """After `attempts` attempts, may there be one more?"""
        return self.max_attempts is None or attempts < self.max_attempts

    def should_retry(self, error: _Failure, attempts: int) -> bool:
        """Retry `error` (a ConnectorError) after `attempts` attempts? Transient classes until
        max_attempts; classes in `also_retry` until their own limit; nothing else."""
        if error.transient:
            return self.allows_another(attempts)
        limit = self.also_retry.get(str(getattr(error.error_class, "value", error.error_class)))
        return limit is not None and attempts < limit


def _config() -> dict:
    return settings.SYNC_RETRY


def _policy(block: Mapping, *, max_attempts: int | None) -> RetryPolicy:
    return RetryPolicy(
        base=float(block["base_seconds"]),
        cap=float(block["cap_seconds"]),
        jitter=float(block["jitter"]),
        max_attempts=max_attempts,
        also_retry=dict(block.get("also_retry", {})),
    )


def max_attempts_for(system: str) -> int:
    """Attempts a step talking to `system` gets (Q2C_MAX_ATTEMPTS_<SYSTEM>, else the system's default)."""
    config = _config()
    return int(config["max_attempts_by_system"].get(system.lower(), config["max_attempts"]))


def policy_for(system: str) -> RetryPolicy:
    """The default policy of a flow step whose role resolves to `system` ("hub" for the hub's own steps)."""
    return _policy(_config(), max_attempts=max_attempts_for(system))


def outbox_policy() -> RetryPolicy:
    """Publishing an outbox message (CRM status write-back, analytics event)."""
    config = _config()
    return _policy({**config, **config["outbox"]}, max_attempts=config["outbox"]["max_attempts"])


def inbox_policy() -> RetryPolicy:
    """Normalising an inbound event while its connector is down (the Celery task's own retries)."""
    config = _config()
    return _policy({**config, **config["inbox"]}, max_attempts=config["inbox"]["max_attempts"])
