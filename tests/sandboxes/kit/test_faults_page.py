"""A sandbox's fault page (/__sandbox__/), served by a real sandbox server."""

from __future__ import annotations

import pytest
import requests
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_faults_page_opens_in_a_browser_logged_in_to_the_portal(sandbox_servers, itops):
    """Portal and sandboxes share a host (127.0.0.1), so the portal's session cookie comes along;
    the page must not run the portal's context processors (its navigation reverses portal URLs)."""
    server = sandbox_servers("netsuite")
    server.faults()
    portal = Client()
    portal.force_login(itops)

    anonymous = requests.get(f"{server.url}/__sandbox__/", timeout=10)
    logged_in = requests.get(f"{server.url}/__sandbox__/", cookies={"sessionid": portal.cookies["sessionid"].value}, timeout=10)

    for response in (anonymous, logged_in):
        assert response.status_code == 200
        assert "Netsuite sandbox — fault injection" in response.text


def test_the_faults_page_form_sets_the_faults(sandbox_servers):
    server = sandbox_servers("netsuite")
    server.faults()

    response = requests.post(f"{server.url}/__sandbox__/", data={"latency_ms": "5", "error_rate": "0", "outage": "on"}, timeout=10)

    assert response.status_code == 200 and "checked" in response.text
    config = requests.get(f"{server.url}/__sandbox__/faults", timeout=10).json()
    server.faults()
    assert (config["latency_ms"], config["outage"]) == (5, True)
