"""Test settings: the real settings with DEBUG on and a fast password hasher. They live in
tests/, not in the product, because they build on the simulators' settings (sandboxes/).

The services are real (PostgreSQL, Redis); only what makes tests slow or needs
TLS is relaxed here. `tests/test_deploy_check.py` checks the production settings.

They build on the sandbox settings (the product's settings plus the vendor simulators), as
the tests drive the simulators in-process and as servers (tests/conftest.py SandboxServer).
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-only-not-secret")

from sandboxes.settings import *  # noqa: E402,F401,F403

# One database for the product and the simulators: tests use both in-process, and the
# sandbox servers they start (tests/conftest.py) run on these settings too.
DATABASES = {"default": DATABASES["default"]}  # noqa: F405
# Django's test flush empties tables with TRUNCATE, which the audit trail refuses unless the session
# says so, on a test database only (migration sync 0015): every test connection says so.
DATABASES["default"] = {
    **DATABASES["default"],
    "OPTIONS": {**DATABASES["default"].get("OPTIONS", {}), "options": "-c q2c.allow_audit_truncate=on"},
}
DATABASE_ROUTERS = []
SANDBOX_DATABASE = "default"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING["root"]["level"] = os.environ.get("LOG_LEVEL", "WARNING")  # noqa: F405

# Tests use their own Redis database so a running demo's queues are never touched.
REDIS_URL = os.environ.get("TEST_REDIS_URL") or REDIS_URL.rsplit("/", 1)[0] + "/15"  # noqa: F405
CELERY_BROKER_URL = REDIS_URL
# The shared cache on that Redis too, its keys under a prefix of this test run: servers the tests
# start as subprocesses inherit it (the environment) and count in the same place.
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = os.environ.setdefault("CACHE_KEY_PREFIX", f"q2c-test-{os.getpid()}")  # noqa: F405
# Round-trip tests read task results; the product itself keeps flow state in PostgreSQL.
CELERY_RESULT_BACKEND = REDIS_URL

# Every chart the tests render is checked against plotly's schema (production skips the ~18 ms).
PLOTLY_VALIDATE = True

# Each test sees its own connector state in the outage banner (a cached banner would outlive
# the test's rolled-back rows); tests/monitoring/live checks the cache itself.
LIVE_BANNER_CACHE_SECONDS = 0

# Rate limits out of the way of the suite (its calls all come from one address and a few users);
# a test that checks them sets low rates (tests/test_rate_limits.py), also through these variables.
for _scope, _variable in {"ingest": "INGEST_THROTTLE", "user": "API_THROTTLE", "anon": "ANON_THROTTLE", "webhook": "WEBHOOK_THROTTLE"}.items():
    if _variable not in os.environ:
        REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][_scope] = "100000/min"  # noqa: F405
