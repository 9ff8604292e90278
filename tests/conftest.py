"""Shared fixtures: role users, a real Celery worker, and headless Chromium.

Everything here is real: PostgreSQL (pytest-django's test database), Redis (a
database of its own, see tests/settings.py), Celery worker processes, Debian Chromium.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery"


# --- roles -------------------------------------------------------------------------
@pytest.fixture
def make_user(db, django_user_model):
    from django.contrib.auth.models import Group

    def make(username: str, role: str | None = None, **extra):
        user = django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def executive(make_user):
    return make_user("erin", "Executive")


@pytest.fixture
def finance(make_user):
    return make_user("fiona", "Finance")


@pytest.fixture
def revops(make_user):
    return make_user("rick", "RevOps")


@pytest.fixture
def itops(make_user):
    return make_user("oscar", "IT Operations")


# --- a real Celery worker ---------------------------------------------------------------
def _test_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    host = quote(s["HOST"] or "", safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{s['USER']}@{host}{port}/{s['NAME']}"


class WorkerProcess:
    """A `celery worker` subprocess on the test database and test Redis."""

    def __init__(self, queues: str = "flows,usage,status,recon", concurrency: int = 2, extra_env: dict | None = None):
        from django.conf import settings

        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": _test_database_url(),
            "TEST_REDIS_URL": settings.REDIS_URL,
            **(extra_env or {}),
        }
        self.log = open(ROOT / ".var" / f"test-worker-{os.getpid()}-{time.time_ns()}.log", "w+")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "q2c_portal",
                "worker",
                "-l",
                "info",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test{time.time_ns()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_ready()
        except Exception:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 30) -> None:
        from q2c_portal.celery import ping

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.output()}")
            try:
                if ping.apply_async(args=["ready"], queue="status", expires=5).get(timeout=3) == "ready":
                    return
            except Exception:  # noqa: BLE001 — not up yet
                time.sleep(0.3)
        raise RuntimeError(f"worker not ready after {timeout}s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def kill(self, sig=signal.SIGKILL) -> None:
        """Kill the whole process group (main process and its prefork children)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def start_worker(django_db_setup, django_db_blocker):
    """Factory for workers a test may kill; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        with django_db_blocker.unblock():
            worker = WorkerProcess(**kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def celery_worker_process(start_worker):
    """A worker for this test only. Never session-wide: a worker left running would consume
    other tests' messages with the wrong settings (connector URLs, retry limits)."""
    return start_worker()


# --- headless Chromium ------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install chromium chromium-driver)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def login(live_server, page):
    """Log in through the real login form; returns the page."""

    def do(user):
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    return do


@pytest.fixture
def open_exception(db):
    from tests.factories import SyncExceptionFactory

    return SyncExceptionFactory(step__flow_run__status="failed")


# --- connector sandboxes as real servers -------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SandboxServer:
    """`manage.py run_sandbox <system>` as a subprocess on the test database."""

    def __init__(self, system: str):
        import socket

        self.system = system
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _test_database_url()}
        self.log = open(ROOT / ".var" / f"test-sandbox-{system}-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_sandbox", system, "--port", str(self.port), "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{system} sandbox exited: {self.log.read()[-3000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{system} sandbox did not open port {self.port}")

    def faults(self, **config) -> dict:
        """Set fault injection (PUT /__sandbox__/faults); no arguments resets to healthy."""
        import requests

        if not config:
            return requests.post(f"{self.url}/__sandbox__/reset", timeout=10).json()
        response = requests.put(f"{self.url}/__sandbox__/faults", json=config, timeout=10)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture(scope="session")
def sandbox_servers(django_db_setup, django_db_blocker):
    """Lazily started sandboxes, one per system for the whole session: sandbox_servers('stripe')."""
    servers: dict[str, SandboxServer] = {}

    def get(system: str) -> SandboxServer:
        if system not in servers:
            with django_db_blocker.unblock():
                servers[system] = SandboxServer(system)
        return servers[system]

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture
def point_connector(settings):
    """Point a connector's base URL at a sandbox server for one test."""

    def point(system: str, server: SandboxServer) -> None:
        config = {**settings.CONNECTORS[system]}
        key = {"salesforce": "instance_url", "netsuite": "base_url", "stripe": "api_base", "business_central": "base_url"}[system]
        config[key] = server.url
        if system == "salesforce":
            config["token_url"] = f"{server.url}/services/oauth2/token"
        if system == "business_central":  # the sandbox answers Entra's token endpoint too
            config["token_url"] = f"{server.url}/{config['tenant_id']}/oauth2/v2.0/token"
        settings.CONNECTORS = {**settings.CONNECTORS, system: config}

    return point
