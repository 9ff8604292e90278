"""The fault harness's short form (issue 17): three scenarios at small volume through the whole
stack — sandboxes, web, worker, beat and a Redis of its own — must end with nothing lost,
duplicated, failed, half-done or run twice, and the book must settle within 30 s of Redis
coming back empty (issue 19). The long form is in the README (bench/faults.py)."""

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


SCENARIOS = ("worker-kill", "pg-terminate", "redis-restart")


def test_worker_kills_dropped_connections_and_an_empty_redis_lose_and_duplicate_nothing():
    db = f"q2c_faults_suite_{os.getpid()}"
    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    cmd = [sys.executable, "bench/faults.py", "--deals", "5", "--scenarios", ",".join(SCENARIOS), "--fault-seconds", "14"]
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
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1 : 1 + len(SCENARIOS)]}
    assert set(rows) == set(SCENARIOS), table
    for name, row in rows.items():
        faults, flows, failed, lost, half_done, duplicated, double_runs = (int(v) for v in row[1:8])
        assert faults >= 1 and flows >= 10, (name, row)  # the fault was injected and the book ran
        assert (failed, lost, half_done, duplicated, double_runs) == (0, 0, 0, 0, 0), (name, row)
    recovered = rows["redis-restart"][8]
    assert recovered.isdigit() and int(recovered) <= 30, table  # "13 s" splits into "13", "s"
