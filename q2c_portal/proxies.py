"""X-Forwarded-Proto / X-Forwarded-For are believed only from the proxies in settings.TRUSTED_PROXIES.

A load balancer in front of the hub terminates TLS and says so in X-Forwarded-Proto; it names the
client in X-Forwarded-For. Any caller can send those headers too, so:

- from a trusted proxy (REMOTE_ADDR inside one of the TRUSTED_PROXIES networks), REMOTE_ADDR
  becomes the client address: the right-most X-Forwarded-For entry that is not itself a trusted
  proxy (what throttles, the login lockout and logs see), and X-Forwarded-Proto stays for
  SECURE_PROXY_SSL_HEADER;
- from anyone else both headers (and X-Forwarded-Host) are dropped before Django reads them.

First in MIDDLEWARE, before SecurityMiddleware reads request.is_secure()."""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "HTTP_FORWARDED")


@functools.lru_cache(maxsize=8)
def parse_networks(values: tuple) -> tuple:
    try:
        return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc} (comma-separated addresses or CIDRs, e.g. 10.0.0.0/8)") from exc


def _address(value: str):
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


class TrustedProxyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def _trusted(self, address) -> bool:
        return address is not None and any(address in network for network in parse_networks(tuple(settings.TRUSTED_PROXIES)))

    def __call__(self, request):
        meta = request.META
        if self._trusted(_address(meta.get("REMOTE_ADDR", ""))):
            hops = [h for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
            for hop in reversed(hops):
                address = _address(hop)
                if address is None:
                    break  # a malformed entry: stop believing the chain here
                meta["REMOTE_ADDR"] = str(address)
                if not self._trusted(address):
                    break
        else:
            for header in FORWARDED_HEADERS:
                meta.pop(header, None)
        return self.get_response(request)
