"""Fixtures for the Salesforce connector tests: the real sandbox server, a connector and a
plain simple-salesforce client pointed at it, and a local HTTP receiver for the relay."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests


@pytest.fixture
def sf_server(sandbox_servers):
    server = sandbox_servers("salesforce")
    server.faults()  # healthy
    yield server
    server.faults()


@pytest.fixture
def org(sf_server):
    """Set sandbox-org knobs (API limit, page size, maintenance 503s)."""

    def set_(**values) -> dict:
        response = requests.put(f"{sf_server.url}/__sandbox__/salesforce/org", json=values, timeout=10)
        response.raise_for_status()
        return response.json()

    return set_


@pytest.fixture
def connector(sf_server, point_connector):
    from sync.connectors.salesforce.client import SalesforceConnector

    point_connector("salesforce", sf_server)
    return SalesforceConnector.from_settings()


@pytest.fixture
def simple_sf(sf_server, settings):
    """simple-salesforce itself, logged in with a client-credentials token, routed to the
    plain-HTTP sandbox by the connector's transport adapter."""
    from simple_salesforce import Salesforce

    from sync.connectors.salesforce.transport import mount_for_instance

    config = settings.CONNECTORS["salesforce"]
    token = requests.post(
        f"{sf_server.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(config["client_id"], config["client_secret"]),
        timeout=10,
    ).json()
    session = requests.Session()
    mount_for_instance(session, token["instance_url"])
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], version="60.0", session=session)


class Receiver:
    """A local HTTP endpoint standing in for the hub's webhook URL."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"body": body, "headers": dict(self.headers.items())})
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"accepted": receiver.status < 300}).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/webhooks/salesforce/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()
