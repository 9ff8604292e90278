"""A Business Central sandbox server per session, healthy and at BC's documented settings at the
start and end of each test; the connector pointed at it; a raw API session for what another BC
user (or a test) does beside the connector; a local webhook receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from sync.connectors.business_central import webhook
from sync.connectors.business_central.client import BusinessCentralConnector


class BCServer:
    """The sandbox server plus its BC-specific controls."""

    def __init__(self, server):
        self.server = server
        self.url = server.url

    def faults(self, **config) -> dict:
        return self.server.faults(**config)

    def settings(self, **values) -> dict:
        response = requests.put(f"{self.url}/__sandbox__/settings", json=values, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.server.faults()
        requests.post(f"{self.url}/__sandbox__/settings/reset", timeout=10).raise_for_status()

    def revoke_tokens(self) -> None:
        requests.post(f"{self.url}/__sandbox__/tokens/revoke", timeout=10).raise_for_status()

    def deliver(self) -> dict:
        response = requests.post(f"{self.url}/__sandbox__/notifications/deliver", timeout=30)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def bc_server(sandbox_servers):
    server = BCServer(sandbox_servers("business_central"))
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def bc(bc_server, point_connector) -> BusinessCentralConnector:
    """The connector, built from settings, pointed at the sandbox."""
    point_connector("business_central", bc_server.server)
    return BusinessCentralConnector.from_settings()


class RawAPI:
    """The API as any client sees it: a bearer token from the sandbox's token endpoint, plain requests."""

    def __init__(self, connector: BusinessCentralConnector, settings):
        config = settings.CONNECTORS["business_central"]
        token = requests.post(
            connector.credentials.token_url,
            data={
                "client_id": config["client_id"],
                "client_secret": config["client_secret"],
                "grant_type": "client_credentials",
                "scope": "https://api.businesscentral.dynamics.com/.default",
            },
            timeout=10,
        ).json()["access_token"]
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self.root = connector.api_root
        self.company = f"{connector.api_root}/companies({connector.company_id})"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else f"{self.company}/{path.lstrip('/')}"
        return self.session.request(method, url, timeout=20, **kwargs)


@pytest.fixture
def raw(bc, settings) -> RawAPI:
    return RawAPI(bc, settings)


class Receiver:
    """A webhook receiver on loopback: answers BC's handshake with the connector's `webhook.handshake`
    (or refuses it), keeps every notification body, answers them with `status`."""

    def __init__(self):
        self.echo = True
        self.status = 202
        self.handshakes: list[str] = []
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 — http.server's name
                query = dict(parse_qsl(urlsplit(self.path).query))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = webhook.handshake(query)
                if token is not None:
                    receiver.handshakes.append(token)
                    answer = token if receiver.echo else "no"
                    self._answer(200, answer.encode(), "text/plain")
                    return
                receiver.bodies.append(body)
                self._answer(receiver.status, b"", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/webhooks/business_central/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def notifications(self) -> list[dict]:
        return [item for body in self.bodies for item in json.loads(body)["value"]]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()
