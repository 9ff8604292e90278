"""The whole stack for engine tests: the three sandboxes as servers, workers pointed at them."""

from __future__ import annotations

import os
import time

import pytest
from django.core.management import call_command

FAST_RETRIES = {"Q2C_RETRY_BASE_SECONDS": "0.3", "Q2C_RETRY_CAP_SECONDS": "2", "Q2C_CIRCUIT_THRESHOLD": "50"}


@pytest.fixture
def reference_data(db):
    """The hub's reference data (legal entities, products, rates) and the NetSuite sandbox's catalog."""
    call_command("seed_reference_data", stdout=open(os.devnull, "w"))
    from sandboxes.netsuite.seed import seed_catalog

    seed_catalog()


@pytest.fixture
def stack(sandbox_servers, point_connector, start_worker, settings):
    """Sandboxes up (healthy), in-process settings and a fresh worker pointed at them.

    Returns an object with .sandboxes[system], .worker, .start_worker(**env)."""

    class Stack:
        pass

    s = Stack()
    s.sandboxes = {name: sandbox_servers(name) for name in ("salesforce", "netsuite", "stripe")}
    env = {**FAST_RETRIES}
    for name, server in s.sandboxes.items():
        server.faults()
        point_connector(name, server)
    env.update(
        {
            "SALESFORCE_INSTANCE_URL": s.sandboxes["salesforce"].url,
            "SALESFORCE_TOKEN_URL": f"{s.sandboxes['salesforce'].url}/services/oauth2/token",
            "NETSUITE_BASE_URL": s.sandboxes["netsuite"].url,
            "STRIPE_API_BASE": s.sandboxes["stripe"].url,
        }
    )
    s.env = env
    s.start_worker = lambda concurrency=2, **extra: start_worker(concurrency=concurrency, extra_env={**env, **extra})
    return s


def wait_for(predicate, timeout: float = 60, interval: float = 0.3, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message}")
