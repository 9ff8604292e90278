"""The fault harness's short form (issue 17): two scenarios at small volume through the whole
stack — sandboxes, web, worker, beat and a Redis of its own — must end with nothing lost,
duplicated, failed or half-done. The long form is in the README (bench/faults.py).

redis-restart is not in the short form yet: after the merges of stop 22 it left a book's first
orders parked at `validate` after Redis came back empty (issue 17, open); run it with
`bench/faults.py --scenarios redis-restart`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from django.conf import settings

pytestmark = [pytest.mark.worker]
ROOT = Path(__file__).resolve().parents[2]


def test_worker_kills_and_dropped_connections_lose_and_duplicate_nothing():
    db = f"q2c_faults_suite_{os.getpid()}"
    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    cmd = [sys.executable, "bench/faults.py", "--deals", "5", "--scenarios", "worker-kill,pg-terminate", "--fault-seconds", "14"]
    try:
        done = subprocess.run([*cmd, "--settle-seconds", "200", "--db", db], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    finally:
        server = urlunparse(urlparse(settings.DATABASE_URL)._replace(path="/postgres"))
        with psycopg.connect(server, autocommit=True) as conn:
            for name in (db, f"{db}_sandboxes"):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    table = out[out.index("scenario  ") :]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:3]}
    assert set(rows) == {"worker-kill", "pg-terminate"}, table
    for name, row in rows.items():
        faults, flows, failed, lost, half_done, duplicated = (int(v) for v in row[1:7])
        assert faults >= 1 and flows >= 10, (name, row)  # the fault was injected and the book ran
        assert (failed, lost, half_done, duplicated) == (0, 0, 0, 0), (name, row)
