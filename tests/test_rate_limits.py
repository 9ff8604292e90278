"""Rate limits are shared by every web process: counts live in Redis (settings.CACHES), so a
gunicorn server with two workers and this test process spend one budget, per token on the API
and per address on the webhooks; past it, 429 problem+json with Retry-After."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import redis
import requests
from django.conf import settings
from django.core.cache import cache
from rest_framework.authtoken.models import Token

from tests.conftest import ROOT, _free_port, _test_database_url

RATE = "5/min"


@pytest.fixture
def low_rates(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"ingest": RATE, "user": RATE, "anon": RATE, "webhook": RATE}}


@pytest.fixture
def web_server(transactional_db, low_rates):
    """The hub under gunicorn (two worker processes) on the test database, at the same low rates."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _test_database_url(),
        **{v: RATE for v in ("INGEST_THROTTLE", "API_THROTTLE", "ANON_THROTTLE", "WEBHOOK_THROTTLE")},
    }
    log = open(ROOT / ".var" / f"test-web-{port}.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "q2c_portal.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.seek(0) or log.read()[-3000:]
        try:
            requests.get(f"{url}/api/v1/schemas/envelope/", timeout=5)
            break
        except requests.RequestException:  # not listening yet, or still loading
            time.sleep(0.3)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)
    log.close()


def raw_count(key: str) -> int:
    """The throttle history Django keeps in Redis for `key`, read straight from Redis."""
    options = settings.CACHES["default"]
    value = redis.Redis.from_url(options["LOCATION"]).get(f"{options['KEY_PREFIX']}:1:{key}")
    return len(pickle.loads(value)) if value else 0


def test_the_api_budget_is_shared_between_a_gunicorn_server_and_this_process(web_server, client, make_user):
    user = make_user("relay-ops", "IT Operations")
    token = Token.objects.create(user=user).key
    headers = {"Authorization": f"Token {token}"}
    served = [requests.get(f"{web_server}/api/v1/flows/", headers=headers, timeout=10).status_code for _ in range(3)]
    assert served == [200, 200, 200]
    assert raw_count(f"throttle_user_{user.pk}") == 3  # counted in Redis, not in a worker's memory
    here = [client.get("/api/v1/flows/", HTTP_AUTHORIZATION=f"Token {token}").status_code for _ in range(2)]
    assert here == [200, 200] and raw_count(f"throttle_user_{user.pk}") == 5
    refused = client.get("/api/v1/flows/", HTTP_AUTHORIZATION=f"Token {token}")
    assert refused.status_code == 429 and refused["Content-Type"] == "application/problem+json"
    assert refused.json()["title"] == "Too many requests" and 0 < int(refused["Retry-After"]) <= 60
    there = requests.get(f"{web_server}/api/v1/flows/", headers=headers, timeout=10)
    assert there.status_code == 429 and int(there.headers["Retry-After"]) > 0
    # another user's budget is their own
    other = Token.objects.create(user=make_user("other-ops", "IT Operations")).key
    assert requests.get(f"{web_server}/api/v1/flows/", headers={"Authorization": f"Token {other}"}, timeout=10).status_code == 200


def test_the_webhook_budget_per_address_is_shared_too(web_server, client):
    cache.delete("throttle_webhook_stripe_127.0.0.1")  # earlier tests in this run posted from this address
    forged = {"data": b'{"id": "evt_1"}', "headers": {"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"}, "timeout": 10}
    answers = [requests.post(f"{web_server}/api/v1/webhooks/stripe/", **forged).status_code for _ in range(5)]
    assert answers == [400] * 5  # counted before the signature is checked
    refused = client.post("/api/v1/webhooks/stripe/", b'{"id": "evt_1"}', content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00")
    assert refused.status_code == 429 and refused["Content-Type"] == "application/problem+json" and int(refused["Retry-After"]) > 0
    assert raw_count("throttle_webhook_stripe_127.0.0.1") == 5
    # the Salesforce relay has its own budget
    assert client.post("/api/v1/webhooks/salesforce/", b"{}", content_type="application/json").status_code != 429


def test_an_anonymous_caller_is_limited_per_address(client, low_rates):
    cache.delete("throttle_anon_10.9.8.7")
    answers = [client.get("/api/v1/schemas/", REMOTE_ADDR="10.9.8.7").status_code for _ in range(6)]
    assert answers == [200] * 5 + [429]
    # X-Forwarded-For from an untrusted caller does not buy a fresh budget
    assert client.get("/api/v1/schemas/", REMOTE_ADDR="10.9.8.7", HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 429
