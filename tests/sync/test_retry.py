"""Pure units: RetryPolicy — the one backoff formula, attempt limits, and the policies built from settings."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.connectors.errors import ConnectorError
from sync.flows.base import Step
from sync.retry import RetryPolicy, inbox_policy, max_attempts_for, outbox_policy, policy_for


def old_backoff_seconds(attempt: int, retry_after: float | None = None, base: float = 5.0, cap: float = 900.0) -> float:
    """sync/engine/runner.py's formula before RetryPolicy."""
    delay = min(cap, base * (2 ** max(attempt - 1, 0)))
    delay *= random.uniform(0.5, 1.5)
    return max(delay, retry_after or 0.0)


@given(
    attempt=st.integers(min_value=0, max_value=60),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=5000)),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_the_step_delay_is_the_runners_old_formula(attempt, retry_after, seed):
    random.seed(seed)
    expected = old_backoff_seconds(attempt, retry_after)
    random.seed(seed)
    assert RetryPolicy(base=5, cap=900, jitter=0.5).delay(attempt, retry_after) == pytest.approx(expected)


@given(attempts=st.integers(min_value=1, max_value=5000))
def test_the_outbox_delay_is_the_outboxs_old_formula(attempts):
    assert RetryPolicy(base=2, cap=600, jitter=0).delay(attempts) == min(2**attempts, 600)


@given(attempt=st.integers(min_value=1, max_value=10_000), retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)))
def test_a_delay_is_never_sooner_than_retry_after_and_never_far_past_the_cap(attempt, retry_after):
    delay = RetryPolicy(base=5, cap=900, jitter=0.5).delay(attempt, retry_after)
    assert delay >= (retry_after or 0.0)
    assert delay <= max(900 * 1.5, retry_after or 0.0)


def test_delays_double_from_the_base_with_jitter_around_them():
    policy = RetryPolicy(base=5, cap=900, jitter=0.5)
    for attempt, middle in [(1, 5), (2, 10), (3, 20), (9, 900), (30, 900)]:
        samples = [policy.delay(attempt) for _ in range(200)]
        assert middle * 0.5 <= min(samples) and max(samples) <= middle * 1.5
    assert RetryPolicy(base=5, cap=900, jitter=0).delay(3) == 20.0


def transient() -> ConnectorError:
    return ConnectorError("unavailable", "down")


def test_transient_errors_are_retried_until_the_attempts_are_spent():
    policy = RetryPolicy(max_attempts=3)
    assert [policy.should_retry(transient(), n) for n in (1, 2, 3)] == [True, True, False]
    assert not policy.should_retry(ConnectorError("validation", "no"), 1)
    assert RetryPolicy(max_attempts=None).should_retry(transient(), 10_000)


def test_classes_in_also_retry_have_their_own_limit():
    policy = RetryPolicy(max_attempts=None, also_retry={"conflict": 3})
    assert [policy.should_retry(ConnectorError("conflict", "locked"), n) for n in (1, 2, 3)] == [True, True, False]
    assert not policy.should_retry(ConnectorError("duplicate", "exists"), 1)


def test_policies_from_settings(settings):
    settings.SYNC_RETRY = {
        **settings.SYNC_RETRY,
        "base_seconds": 0.3,
        "cap_seconds": 2.0,
        "max_attempts_by_system": {**settings.SYNC_RETRY["max_attempts_by_system"], "netsuite": 3},
    }
    assert policy_for("netsuite") == RetryPolicy(base=0.3, cap=2.0, jitter=0.5, max_attempts=3)
    assert (max_attempts_for("salesforce"), max_attempts_for("stripe"), max_attempts_for("hub")) == (6, 6, 1)
    assert max_attempts_for("chargebee") == settings.SYNC_RETRY["max_attempts"] == 6  # a system not listed
    assert outbox_policy() == RetryPolicy(base=2, cap=600, jitter=0, max_attempts=None, also_retry={"conflict": 3})
    assert inbox_policy() == RetryPolicy(base=0.3, cap=2.0, jitter=0.5, max_attempts=9)


def test_a_step_uses_its_systems_policy_unless_it_names_one(settings):
    settings.SYNC_RETRY = {**settings.SYNC_RETRY, "max_attempts_by_system": {**settings.SYNC_RETRY["max_attempts_by_system"], "stripe": 4}}
    default = Step("billing_subscription", "billing", run=lambda ctx: {})
    patient = Step("erp_invoice", "erp", run=lambda ctx: {}, retry=RetryPolicy(base=60, max_attempts=20))
    assert default.retry_policy("stripe").max_attempts == 4 and default.retry_policy("hub").max_attempts == 1
    assert patient.retry_policy("netsuite") == RetryPolicy(base=60, max_attempts=20)


def test_the_environment_sets_the_numbers_when_settings_load():
    """Workers get Q2C_RETRY_* / Q2C_MAX_ATTEMPTS[_SYSTEM] in their environment (tests/sync/conftest.py FAST_RETRIES)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "q2c_portal.settings",
        "DEBUG": "1",
        "Q2C_RETRY_BASE_SECONDS": "0.3",
        "Q2C_RETRY_CAP_SECONDS": "2",
        "Q2C_MAX_ATTEMPTS": "4",
        "Q2C_MAX_ATTEMPTS_NETSUITE": "3",
    }
    code = "import json; from django.conf import settings; print(json.dumps(settings.SYNC_RETRY))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, check=True)
    config = json.loads(out.stdout)
    assert (config["base_seconds"], config["cap_seconds"], config["max_attempts"]) == (0.3, 2.0, 4)
    assert config["max_attempts_by_system"] == {"salesforce": 6, "netsuite": 3, "stripe": 6, "hub": 1}
