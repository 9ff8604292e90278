"""What the benches share: fresh databases on a server, free ports, subprocesses started and stopped
as process groups, and the connector sandboxes as servers. Imported by the scripts in this folder
(`python bench/<name>.py` puts it on the path)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
SANDBOXES = ("salesforce", "netsuite", "stripe")


def with_path(url: str, path: str) -> str:
    return urlunparse(urlparse(url)._replace(path=path))


def fresh_databases(server: str, *names: str) -> None:
    """Drop (closing their connections) and create each database on the server of `server`."""
    import psycopg

    with psycopg.connect(with_path(server, "/postgres"), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Until `proc` listens on `port`; SystemExit when it exits first or takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early (see its log in .var/)")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not open port {port}")
        time.sleep(0.2)


def spawn(cmd: list[str], env: dict, log: str) -> subprocess.Popen:
    """`cmd` in its own process group (so stop() reaches its children), output to .var/<log>."""
    (ROOT / ".var").mkdir(exist_ok=True)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(ROOT / ".var" / log, "a"), stderr=subprocess.STDOUT, start_new_session=True)


def start_sandboxes(ports: dict[str, int], env: dict, log_prefix: str) -> list[subprocess.Popen]:
    """The three connector sandboxes as servers (`manage.py run_sandbox`, 2 workers each), listening."""
    procs = []
    for name in SANDBOXES:
        proc = spawn([sys.executable, "manage.py", "run_sandbox", name, "--port", str(ports[name]), "--workers", "2"], env, f"{log_prefix}-{name}.log")
        procs.append(proc)
        wait_port(ports[name], proc, f"{name} sandbox")
    return procs


def stop(procs: list[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM each process group (warm shutdown), SIGKILL what is still there after `timeout`."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def sandbox_env(ports: dict[str, int]) -> dict[str, str]:
    """The connectors pointed at the sandboxes on `ports`."""
    return {
        "SALESFORCE_INSTANCE_URL": f"http://127.0.0.1:{ports['salesforce']}",
        "SALESFORCE_TOKEN_URL": f"http://127.0.0.1:{ports['salesforce']}/services/oauth2/token",
        "NETSUITE_BASE_URL": f"http://127.0.0.1:{ports['netsuite']}",
        "STRIPE_API_BASE": f"http://127.0.0.1:{ports['stripe']}",
    }


def prepare_product_and_sandboxes() -> None:
    """After django.setup() on sandbox settings: both databases migrated, the reference data and the
    ERP catalog seeded."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("migrate", database="sandboxes", verbosity=0)
    call_command("seed_reference_data", stdout=open(os.devnull, "w"))
    from sandboxes.netsuite.seed import seed_catalog

    seed_catalog()
