"""Q2C Portal settings: the one place for configuration.

Everything that differs between a laptop, CI and production comes from the
environment. Defaults are the safe production ones (DEBUG off, secure cookies);
the demo and the test scripts opt into DEBUG explicitly.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-dev-only-key-set-SECRET_KEY-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "axes",  # login throttling and lockout (q2c_portal/auth.py)
    "csp",  # Content-Security-Policy header (CONTENT_SECURITY_POLICY below)
    "sync",
    "monitoring",
]  # the vendor simulators are not part of the product: sandboxes.settings adds them

MIDDLEWARE = [
    "q2c_portal.proxies.TrustedProxyMiddleware",  # X-Forwarded-* only from TRUSTED_PROXIES
    "q2c_portal.observability.RequestIdMiddleware",
    "q2c_portal.edge.EdgeInputMiddleware",  # NUL bytes, oversized and too-deep bodies: 4xx before any view
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "q2c_portal.observability.UserTimezoneMiddleware",
    "axes.middleware.AxesMiddleware",  # last: answers a locked-out login with the lockout page
]

ROOT_URLCONF = "q2c_portal.urls"
WSGI_APPLICATION = "q2c_portal.wsgi.application"
ASGI_APPLICATION = "q2c_portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "monitoring.context_processors.portal",
            ],
        },
    }
]

# --- data stores --------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/q2c")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("Q2C Portal needs PostgreSQL (percentiles, partial indexes, SKIP LOCKED).")
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# One cache for every web process (rate-limit counts, the outage banner): Redis, keys under their
# own prefix beside Celery's. CACHE_URL moves it to another Redis database or server.
CACHES = {
    "default": {
        "BACKEND": "q2c_portal.throttling.FailOpenRedisCache",
        "LOCATION": os.environ.get("CACHE_URL") or REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "q2c-cache"),
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

# --- auth ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes counts failed logins per username + client address (the login page and the admin's);
# AXES_FAILURE_LIMIT failures lock that pair for AXES_COOLOFF_MINUTES. Unlock: manage.py axes_reset_username.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "q2c_portal.auth.locked_out"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "monitoring:overview"
LOGOUT_REDIRECT_URL = "login"

# --- i18n / time --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")  # default display zone; users may pick their own
USE_I18N = True
USE_TZ = True  # stored in UTC, shown in the user's zone

# --- static -------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.min.js from the plotly wheel, served locally: no CDN, works offline
    ("plotly", Path(plotly.__file__).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG else "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- security (production defaults; DEBUG relaxes what needs TLS) ----------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # believed only from TRUSTED_PROXIES:
# the load balancers' addresses or CIDRs, comma-separated (q2c_portal/proxies.py); empty: none
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
for _network in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_exc} (comma-separated addresses or CIDRs, e.g. 10.0.0.0/8)") from None
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): everything from this server, no inline script anywhere
# (charts travel as data, static/js/portal.js draws them). Styles allow 'unsafe-inline' because
# plotly.js and htmx set style attributes and inject <style> elements at run time.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- DRF ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "q2c_portal.api.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "q2c_portal.api.problem_exception_handler",
    # every API call is counted in the shared cache (q2c_portal/throttling.py); 429 + Retry-After past the rate
    "DEFAULT_THROTTLE_CLASSES": ["q2c_portal.throttling.UserThrottle", "q2c_portal.throttling.AnonThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "ingest": os.environ.get("INGEST_THROTTLE", "6000/min"),  # per integration token, events endpoints
        "user": os.environ.get("API_THROTTLE", "1200/min"),  # per token or signed-in user, every other endpoint
        "anon": os.environ.get("ANON_THROTTLE", "120/min"),  # per address, calls without credentials
        "webhook": os.environ.get("WEBHOOK_THROTTLE", "3000/min"),  # per address and vendor, webhooks
    },
    "NUM_PROXIES": 0,  # the client address is REMOTE_ADDR; X-Forwarded-For only via TRUSTED_PROXIES
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Q2C Portal API",
    "DESCRIPTION": "Quote-to-cash integration hub: event ingestion, flows, exceptions, KPIs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # no badge from validator.swagger.io: the docs page loads nothing from another host
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {"ExceptionStatusEnum": "sync.models.SyncException.Status", "FlowStatusEnum": "sync.models.FlowRun.Status"},
    # pages, problem+json errors and the webhooks, as the API answers them (q2c_portal/openapi.py)
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "q2c_portal.openapi.postprocess"],
}

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None  # flow state lives in PostgreSQL, not in a result backend
CELERY_TASK_ACKS_LATE = True  # a killed worker's message is redelivered …
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # … instead of being acked and lost
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "flows"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis redelivers unacked messages after this; longer than any step may take.
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    # publishing must fail fast when Redis is down (the inbox table keeps the work)
    "max_retries": 1,
    "interval_start": 0,  # …and without the default 2 s pause between the tries
    "interval_step": 0.2,
    "interval_max": 0.5,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- sync engine: timings of the step runner and the circuit breaker ----------------
# Read once when sync/engine/runner.py and circuit.py load; a worker takes them from its
# environment at start.
SYNC_ENGINE = {
    # a worker holds a flow this long per step; a worker killed mid-step frees it after this
    "FLOW_LEASE_SECONDS": float(os.environ.get("Q2C_FLOW_LEASE_SECONDS", "90")),
    # a flow parked (waiting for a prerequisite) longer than this opens an exception
    "PARK_LIMIT_HOURS": float(os.environ.get("Q2C_PARK_LIMIT_HOURS", "4")),
    # consecutive `unavailable` errors that open a connector's circuit, and how long it stays open
    "CIRCUIT_THRESHOLD": int(os.environ.get("Q2C_CIRCUIT_THRESHOLD", "5")),
    "CIRCUIT_COOLDOWN_SECONDS": float(os.environ.get("Q2C_CIRCUIT_COOLDOWN_SECONDS", "30")),
    # a step that loses the hub's own connection (database, broker) keeps retrying this long after
    # it first started, whatever its attempts: the fault is ours, not the data's nor the vendor's
    "INFRA_RETRY_MINUTES": float(os.environ.get("Q2C_INFRA_RETRY_MINUTES", "30")),
}
# The SLA due date the runner stamps on each new flow: the dotted path of a function
# `(flow_type, started_at) -> datetime | None` (a string, so settings import no app); empty: no SLA.
SYNC_SLA_DUE_AT = "monitoring.sla.policies.sla_due_at"
# Informational sections of /healthz from the apps above q2c_portal: name → dotted path of a
# function returning a dict (strings, so q2c_portal imports no app).
# A section whose dict says "status": "degraded" makes the whole answer "degraded" (still 200:
# the hub is alive, its work waits); only PostgreSQL or the broker make it 503.
HEALTH_DETAILS = {"kpi_rollups": "monitoring.kpis.rollups.health", "connectors": "monitoring.live.selectors.connectors_health"}

# --- product settings -----------------------------------------------------------
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL") or "http://localhost:8000"  # absolute links in alerts
REPORTING_CURRENCY = os.environ.get("REPORTING_CURRENCY", "USD").upper()
if len(REPORTING_CURRENCY) != 3 or not REPORTING_CURRENCY.isalpha():
    raise ImproperlyConfigured("REPORTING_CURRENCY must be an ISO 4217 code such as USD.")
# KPI screens read hourly rollups of settled flows (monitoring/kpis/rollups.py); 0 reads raw rows only
# (same figures, slower at volume) — a switch for diagnosing a suspected rollup fault.
KPI_ROLLUPS = env_bool("KPI_ROLLUPS", True)
# Connector call records (request rate, errors, latency on the connectors page) are kept this long.
CONNECTOR_CALL_RETENTION_DAYS = int(os.environ.get("CONNECTOR_CALL_RETENTION_DAYS", "35"))
# Check each chart against plotly's schema before rendering (on in tests; ~18 ms a chart).
PLOTLY_VALIDATE = env_bool("PLOTLY_VALIDATE", False)

# --- customer master data: matching arriving customers (sync/customers/, docs/CUSTOMER_MATCHING.md) ---
# Score 0–100 = weighted mean of the fields both records have (rapidfuzz token_sort_ratio on the
# normalised names; exact agreement on tax id, company email domain and country).
#   score >= AUTO_LINK, one candidate only, a key agreeing, none disagreeing, not a second record of
#     the same system          → the record is linked to that customer (no person needed)
#   REVIEW <= score (or a tax id / cross-system id agrees) → a duplicate/conflict exception for review
#   below REVIEW               → a new customer
CUSTOMER_MATCHING = {
    "AUTO_LINK": float(os.environ.get("Q2C_MATCH_AUTO_LINK", "92")),
    "REVIEW": float(os.environ.get("Q2C_MATCH_REVIEW", "75")),
    "WEIGHTS": {"name": 0.55, "tax_id": 0.25, "email_domain": 0.10, "country": 0.10},
    # names whose digit tokens differ ("Globex 472" / "Globex 473") score at most this on the name
    "NUMBER_MISMATCH_NAME_CAP": 50.0,
    # the block: customers whose normalised name is trigram-similar (pg_trgm) at least this much,
    # plus every customer sharing an exact key; at most CANDIDATES of them are scored
    "TRIGRAM_SIMILARITY": 0.3,
    "CANDIDATES": 20,
}

# --- monitoring: live state ---------------------------------------------------------
# A connector counts as degraded (banner on every page, /healthz "degraded") when at least this
# share of its calls in the last window failed for a system reason (unavailable, timeout, rate
# limit, auth), out of at least min_calls; it is down while its circuit is open.
CONNECTOR_DEGRADED = {
    "error_rate": float(os.environ.get("CONNECTOR_DEGRADED_ERROR_RATE", "0.2")),
    "min_calls": int(os.environ.get("CONNECTOR_DEGRADED_MIN_CALLS", "10")),
    "window_seconds": int(os.environ.get("CONNECTOR_DEGRADED_WINDOW_SECONDS", "300")),
}
# Every page shows the outage banner; each web process reads the connectors' state at most this often.
LIVE_BANNER_CACHE_SECONDS = int(os.environ.get("LIVE_BANNER_CACHE_SECONDS", "5"))

# --- monitoring: alerts ---------------------------------------------------------------
# An exception spike alerts when at least this many exceptions open within 15 minutes (and at
# least 3× the previous day's 15-minute average). Links in alerts use PORTAL_BASE_URL above.
ALERT_SPIKE_MIN = int(os.environ.get("ALERT_SPIKE_MIN", "5"))

# --- connectors: base URLs and credentials from the environment ---------------------
# Defaults point at the local sandboxes (bin/run-demo starts them); production sets the
# real URLs and credentials. Nothing else changes between the two.
CONNECTORS = {
    "salesforce": {
        "token_url": os.environ.get("SALESFORCE_TOKEN_URL", "http://127.0.0.1:8101/services/oauth2/token"),
        "instance_url": os.environ.get("SALESFORCE_INSTANCE_URL", "http://127.0.0.1:8101"),
        "api_version": os.environ.get("SALESFORCE_API_VERSION", "60.0"),
        "client_id": os.environ.get("SALESFORCE_CLIENT_ID", "sandbox-client-id"),
        "client_secret": os.environ.get("SALESFORCE_CLIENT_SECRET", "sandbox-client-secret"),
        "username": os.environ.get("SALESFORCE_USERNAME", "integration@q2c.example"),
        "private_key_file": os.environ.get("SALESFORCE_PRIVATE_KEY_FILE", ""),
        "webhook_secret": os.environ.get("SALESFORCE_WEBHOOK_SECRET", "sandbox-salesforce-relay-secret"),
        # single-currency orgs send no CurrencyIsoCode: their records are in this currency
        "corporate_currency": os.environ.get("SALESFORCE_CORPORATE_CURRENCY", "USD").upper(),
        "jwt_audience": os.environ.get("SALESFORCE_JWT_AUDIENCE", ""),  # default: login.salesforce.com (test.* for sandboxes)
        "timeout": float(os.environ.get("SALESFORCE_TIMEOUT", "30")),
        "max_rate_limit_wait": float(os.environ.get("SALESFORCE_MAX_RATE_LIMIT_WAIT", "30")),
    },
    "netsuite": {
        "base_url": os.environ.get("NETSUITE_BASE_URL", "http://127.0.0.1:8102"),
        "account_id": os.environ.get("NETSUITE_ACCOUNT_ID", "1234567_SB1"),
        "consumer_key": os.environ.get("NETSUITE_CONSUMER_KEY", "sandbox-consumer-key"),
        "consumer_secret": os.environ.get("NETSUITE_CONSUMER_SECRET", "sandbox-consumer-secret"),
        "token_id": os.environ.get("NETSUITE_TOKEN_ID", "sandbox-token-id"),
        "token_secret": os.environ.get("NETSUITE_TOKEN_SECRET", "sandbox-token-secret"),
        # billing calculates invoice tax; it is posted as one line on this item (an Other Charge
        # item whose itemId is this SKU) so the ERP invoice total equals the billing total
        "tax_item": os.environ.get("NETSUITE_TAX_ITEM", "SALES-TAX"),
    },
    # Microsoft Dynamics 365 Business Central, API v2.0 (sync/connectors/business_central): a second
    # ERP, registered but not playing a role unless Q2C_ERP (or, later, a legal entity) names it.
    # Production: base URL https://api.businesscentral.dynamics.com, token URL
    # https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token, the app registered on BC's
    # "Microsoft Entra Applications" card; the sandbox (`run_sandbox business_central`) answers both.
    "business_central": {
        "base_url": os.environ.get("BUSINESS_CENTRAL_BASE_URL", "http://127.0.0.1:8104"),
        "token_url": os.environ.get(
            "BUSINESS_CENTRAL_TOKEN_URL",
            f"http://127.0.0.1:8104/{os.environ.get('BUSINESS_CENTRAL_TENANT_ID', 'sandbox-tenant')}/oauth2/v2.0/token",
        ),
        "tenant_id": os.environ.get("BUSINESS_CENTRAL_TENANT_ID", "sandbox-tenant"),
        "environment": os.environ.get("BUSINESS_CENTRAL_ENVIRONMENT", "sandbox"),
        "company_id": os.environ.get("BUSINESS_CENTRAL_COMPANY_ID", "5b2a1c9e-7d3f-4e8a-9c61-0b4d2f7a8e13"),
        "client_id": os.environ.get("BUSINESS_CENTRAL_CLIENT_ID", "sandbox-bc-client-id"),
        "client_secret": os.environ.get("BUSINESS_CENTRAL_CLIENT_SECRET", "sandbox-bc-client-secret"),
        "scope": os.environ.get("BUSINESS_CENTRAL_SCOPE", "https://api.businesscentral.dynamics.com/.default"),
        # the hub's own customer payment journal (batch code, at most 10 characters; created when missing)
        "payment_journal": os.environ.get("BUSINESS_CENTRAL_PAYMENT_JOURNAL", "Q2C"),
        # items (by number) that billing-calculated tax and line-less credit memos are booked on
        "tax_item": os.environ.get("BUSINESS_CENTRAL_TAX_ITEM", "SALES-TAX"),
        "adjustment_item": os.environ.get("BUSINESS_CENTRAL_ADJUSTMENT_ITEM", "ADJUSTMENT"),
        # the clientState of the hub's webhook subscriptions: notifications carrying another are refused
        "webhook_client_state": os.environ.get("BUSINESS_CENTRAL_WEBHOOK_CLIENT_STATE", "sandbox-bc-client-state"),
        "timeout": float(os.environ.get("BUSINESS_CENTRAL_TIMEOUT", os.environ.get("CONNECTOR_TIMEOUT_SECONDS", "20"))),
        "max_rate_limit_wait": float(os.environ.get("BUSINESS_CENTRAL_MAX_RATE_LIMIT_WAIT", "30")),
    },
    "stripe": {
        "api_base": os.environ.get("STRIPE_API_BASE", "http://127.0.0.1:8103"),
        "api_key": os.environ.get("STRIPE_API_KEY", "sk_test_sandbox"),
        "webhook_secret": os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_sandbox_secret"),
        "api_version": os.environ.get("STRIPE_API_VERSION", "2025-03-31.basil"),
    },
}
# which connector plays each role (a new ERP or billing platform is one new module)
CONNECTOR_ROLES = {
    "crm": os.environ.get("Q2C_CRM", "salesforce"),
    "billing": os.environ.get("Q2C_BILLING", "stripe"),
    "erp": os.environ.get("Q2C_ERP", "netsuite"),
}
CONNECTOR_TIMEOUT_SECONDS = float(os.environ.get("CONNECTOR_TIMEOUT_SECONDS", "20"))

# --- SYNC_RETRY: the retry schedule (sync/retry.py builds RetryPolicy objects from it) ----
# A failed attempt waits min(cap, base × 2^(attempt-1)) seconds, scaled by a random factor in
# [1 - jitter, 1 + jitter] and never less than the system's Retry-After. A flow step is
# retried on transient errors (rate limit, timeout, unavailable) until it has had its system's
# max attempts, then dead-lettered; Q2C_MAX_ATTEMPTS_<SYSTEM> overrides one system, and
# Q2C_MAX_ATTEMPTS applies to systems not listed. The hub's own steps (mapping, validation)
# get one attempt.
SYNC_RETRY = {
    "base_seconds": float(os.environ.get("Q2C_RETRY_BASE_SECONDS", "5")),
    "cap_seconds": float(os.environ.get("Q2C_RETRY_CAP_SECONDS", "900")),
    "jitter": 0.5,
    "max_attempts": int(os.environ.get("Q2C_MAX_ATTEMPTS", "6")),
    "max_attempts_by_system": {
        "salesforce": 6,
        "netsuite": 6,
        "stripe": 6,
        "hub": 1,
        **{name.removeprefix("Q2C_MAX_ATTEMPTS_").lower(): int(value) for name, value in os.environ.items() if name.startswith("Q2C_MAX_ATTEMPTS_")},
    },
    # outbox messages (CRM status write-backs, analytics): 2, 4, 8 … 600 s, transient errors without
    # limit (the CRM being down only delays them), a conflict (record locked) for three attempts
    "outbox": {"base_seconds": 2, "cap_seconds": 600, "jitter": 0, "max_attempts": None, "also_retry": {"conflict": 3}},
    # normalising an inbound event while its connector is down: the first try and 8 retries
    "inbox": {"max_attempts": 9},
}

# --- logging: one JSON object per line, with the request id ------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "q2c_portal.observability.RequestIdFilter"},
        "redact": {"()": "q2c_portal.redaction.RedactingFilter"},  # no secret in a log line
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id", "redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.server": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},  # the stripe library logs every request at INFO
    },
}
