"""Shared fixtures: role users, a real Celery worker, and headless Chromium.

Everything here is real: PostgreSQL (pytest-django's test database), Redis (a
database of its own, see settings_test), Celery worker processes, Debian Chromium.
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
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
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
            "DJANGO_SETTINGS_MODULE": "q2c_portal.settings_test",
            "DATABASE_URL": _test_database_url(),
            "TEST_REDIS_URL": settings.REDIS_URL,
            **(extra_env or {}),
        }
        self.log = open(ROOT / ".var" / f"test-worker-{os.getpid()}-{time.time_ns()}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "q2c_portal", "worker", "-l", "info", "-Q", queues,
             "-c", str(concurrency), "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"test{time.time_ns()}@%h"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
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


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        worker = WorkerProcess()
    yield worker
    worker.stop()


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
