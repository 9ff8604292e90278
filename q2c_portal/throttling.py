"""Rate limits shared by every web process: DRF throttles whose counts live in the Redis cache
(settings.CACHES), so two gunicorn workers (or two servers) spend one budget.

- `UserThrottle`: every API endpoint, per token / signed-in user (rate "user");
- `AnonThrottle`: API calls without credentials, per client address (rate "anon");
- `WebhookThrottle`: the vendor webhooks, per client address and system (rate "webhook"),
  counted before the signature is checked, so a flood of forged calls is cut off cheaply;
- the ingestion endpoints keep their own budget (sync.api.IngestThrottle, rate "ingest").

A refused call answers 429 problem+json with Retry-After (q2c_portal.api). Rates are read from
settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] on every call (an override in a test applies).
The client address is REMOTE_ADDR (DRF NUM_PROXIES = 0): a caller cannot pick its own by
sending X-Forwarded-For; behind a trusted proxy q2c_portal.observability.TrustedProxyMiddleware
puts the real address there.

When Redis cannot be reached the throttles let calls through (logged): events are still
accepted into PostgreSQL during a Redis outage, as the inbox promises."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling

log = logging.getLogger(__name__)


class SharedRateMixin:
    def get_rate(self):
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)

    def allow_request(self, request, view):
        self.rate = self.get_rate()  # read per call, not once at import
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # Redis down: fail open, the rest of the hub keeps working
            log.warning("rate limit not applied (%s unavailable): %s", self.scope, exc)
            return True


class UserThrottle(SharedRateMixin, throttling.UserRateThrottle):
    scope = "user"


class AnonThrottle(SharedRateMixin, throttling.AnonRateThrottle):
    scope = "anon"


class WebhookThrottle(SharedRateMixin, throttling.SimpleRateThrottle):
    scope = "webhook"

    def __init__(self, system: str):
        self.system = system

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": f"webhook_{self.system}", "ident": self.get_ident(request)}


class FailOpenRedisCache(RedisCache):
    """Django's Redis cache that answers "not cached" instead of raising while Redis is down
    (every page reads the outage banner through the cache)."""

    def _safe(self, name, default, *args, **kwargs):
        try:
            return getattr(super(), name)(*args, **kwargs)
        except Exception as exc:
            log.warning("cache %s failed: %s", name, exc)
            return default

    def get(self, key, default=None, version=None):
        return self._safe("get", default, key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._safe("set", None, key, value, timeout, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._safe("add", False, key, value, timeout, version)

    def delete(self, key, version=None):
        return self._safe("delete", False, key, version)

    def get_many(self, keys, version=None):
        return self._safe("get_many", {}, keys, version)
