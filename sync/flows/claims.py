"""One creator at a time for one hub record in one external system.

Most vendors do not deduplicate creates: Stripe creates a second customer for a second POST, and
its search — the lookup before create — is eventually consistent (up to a minute). Two flows for
one new account (two orders closed minutes apart, a retry beside a first attempt) would each look,
find nothing, and create. `creating(system, kind, key)` holds a PostgreSQL session advisory lock
for the look-then-create, so the second flow waits, then finds the hub's reference the first one
wrote and creates nothing. The lock is per connection: a worker killed mid-call drops it with its
connection; the next attempt relies on the vendor-side idempotency key derived from the hub's id.

The wait is bounded: a holder stuck behind a slow vendor call makes the waiter retry later
(`ConnectorError` UNAVAILABLE, transient) instead of holding a worker slot indefinitely."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from sync.connectors.errors import ConnectorError, ErrorClass

WAIT_SECONDS = 45.0


@contextmanager
def creating(system: str, kind: str, key: object, *, wait_seconds: float = WAIT_SECONDS) -> Iterator[None]:
    name = f"create:{system}:{kind}:{key}"
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [name])
            if cursor.fetchone()[0]:
                break
        if time.monotonic() >= deadline:
            raise ConnectorError(ErrorClass.UNAVAILABLE, f"another flow is creating this {kind} in {system}; retrying later", system=system)
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])
        except Exception:  # noqa: BLE001 — a dropped connection has released the lock already
            pass
