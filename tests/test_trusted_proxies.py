"""X-Forwarded-Proto and X-Forwarded-For count only when the peer is one of TRUSTED_PROXIES."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from q2c_portal.proxies import TrustedProxyMiddleware

pytestmark = pytest.mark.django_db


def seen(**meta):
    """What a view behind the middleware sees: (is_secure, REMOTE_ADDR)."""
    out = {}

    def view(request):
        out.update(secure=request.is_secure(), addr=request.META["REMOTE_ADDR"], xff=request.META.get("HTTP_X_FORWARDED_FOR"))
        return HttpResponse()

    TrustedProxyMiddleware(view)(RequestFactory().get("/", **meta))
    return out


def test_forwarded_headers_from_a_trusted_proxy_are_believed(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.168.1.5"]
    view = seen(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_FOR="198.51.100.7, 192.168.1.5")
    assert view["secure"] is True and view["addr"] == "198.51.100.7"  # the right-most hop that is not a proxy
    # a client that prepends its own entry does not get to choose: the proxy's own view wins
    spoofed = seen(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    assert spoofed["addr"] == "203.0.113.9"


def test_forwarded_headers_from_anyone_else_are_dropped(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    view = seen(REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert view == {"secure": False, "addr": "203.0.113.5", "xff": None}
    settings.TRUSTED_PROXIES = []  # the default: no proxy is trusted
    assert seen(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_PROTO="https")["secure"] is False


def test_through_the_whole_stack_https_redirect_and_lockout_address(client, settings, make_user):
    settings.SECURE_SSL_REDIRECT = True
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    # a client claiming https itself is still redirected to https …
    assert client.get("/healthz/x", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_PROTO="https").status_code == 301
    # … the load balancer saying so is believed
    assert client.get("/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_PROTO="https").status_code == 200
    # the login lockout counts the client behind the proxy, not the proxy (one client cannot lock everyone out)
    make_user("oscar", "IT Operations")
    for i in range(6):
        client.post(
            "/login/",
            {"username": "oscar", "password": f"wrong-{i}"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_PROTO="https",
            HTTP_X_FORWARDED_FOR="198.51.100.1",
        )
    other = client.post(
        "/login/",
        {"username": "oscar", "password": "correct-horse-battery"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_FOR="198.51.100.2",
    )
    assert other.status_code == 302


def test_a_bad_trusted_proxies_value_stops_the_start():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "TRUSTED_PROXIES": "10.0.0.0/8,not-an-address"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "TRUSTED_PROXIES" in result.stderr
