"""Ingestion benchmark: events/s accepted by the API, next to raw PostgreSQL inserts measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/q2c_bench python bench/bench_ingest.py --events 20000

It creates/migrates the database named in DATABASE_URL (use a scratch one), then measures:
  * raw baseline: psycopg single-row INSERT+commit, executemany in batches of 1000, COPY —
    into a table shaped like the inbox (JSONB payload, unique (source, source_event_id));
  * the product: POST /api/v1/events/ (one event per call) and /api/v1/events/batch/ (1000
    per call) through Django's full request stack (auth, validation, problem+json, the
    ON CONFLICT insert); the broker is not needed (dispatch fails fast and the sweeper
    would pick the rows up), so this measures acceptance, not processing.
Prints a table. Numbers depend on the machine; compare the columns of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "q2c_portal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens: dispatch fails fast, rows wait for the sweeper
os.environ.setdefault("INGEST_THROTTLE", "100000000/min")
os.environ.setdefault("LOG_LEVEL", "ERROR")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")


def envelope(i: int, run: str) -> dict:
    return {
        "id": f"bench-{run}-{i}",
        "type": "order.closed_won.v1",
        "source": "bench",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {
            "order_number": f"B-{run}-{i}",
            "account": {"external_id": f"001B{i}", "name": f"Bench Customer {i}"},
            "currency": "USD",
            "legal_entity": "US01",
            "closed_won_at": "2026-11-23T10:00:00Z",
            "lines": [{"sku": "PLAT-SEAT", "quantity": "25", "unit_price": "40.00", "billing": "recurring", "interval": "month"}],
        },
    }


def raw_baselines(dsn: str, n: int) -> dict[str, float]:
    import psycopg

    rows = [("bench", f"raw-{i}", "order.closed_won.v1", json.dumps(envelope(i, "raw"))) for i in range(n)]
    out = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_inbox")
        conn.execute(
            "CREATE TABLE bench_raw_inbox (id bigserial primary key, source text, source_event_id text, event_type text, envelope jsonb, received_at timestamptz default now(), UNIQUE (source, source_event_id))"
        )
        sample = rows[: min(n, 3000)]
        started = time.perf_counter()
        for row in sample:
            conn.execute("INSERT INTO bench_raw_inbox (source, source_event_id, event_type, envelope) VALUES (%s, %s, %s, %s)", row)
        out["raw INSERT + commit per row"] = len(sample) / (time.perf_counter() - started)
        conn.execute("TRUNCATE bench_raw_inbox")
        started = time.perf_counter()
        with conn.cursor() as cur:
            for k in range(0, n, 1000):
                with conn.transaction():
                    cur.executemany("INSERT INTO bench_raw_inbox (source, source_event_id, event_type, envelope) VALUES (%s, %s, %s, %s)", rows[k : k + 1000])
        out["raw executemany, 1000 per commit"] = n / (time.perf_counter() - started)
        conn.execute("TRUNCATE bench_raw_inbox")
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_raw_inbox (source, source_event_id, event_type, envelope) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        out["raw COPY"] = n / (time.perf_counter() - started)
        conn.execute("DROP TABLE bench_raw_inbox")
    return out


def product(n: int) -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    call_command("issue_token", "bench-relay", "--scope", "crm", "--source", "bench", stdout=open(os.devnull, "w"))
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user__username='bench-relay').key}")
    run = uuid.uuid4().hex[:8]
    out = {}

    singles = min(n, 2000)
    latencies = []
    started = time.perf_counter()
    for i in range(singles):
        t = time.perf_counter()
        response = client.post("/api/v1/events/", envelope(i, f"s{run}"), content_type="application/json")
        latencies.append(time.perf_counter() - t)
        assert response.status_code == 202, response.content[:300]
    out["POST /api/v1/events/ (1 per call)"] = singles / (time.perf_counter() - started)
    out["  p50 / p95 latency ms"] = (statistics.median(latencies) * 1000, sorted(latencies)[int(len(latencies) * 0.95)] * 1000)

    started = time.perf_counter()
    for k in range(0, n, 1000):
        body = {"events": [envelope(i, f"b{run}") for i in range(k, min(k + 1000, n))]}
        response = client.post("/api/v1/events/batch/", body, content_type="application/json")
        assert response.status_code == 202 and response.json()["summary"]["accepted"] == len(body["events"]), response.content[:500]
    out["POST /api/v1/events/batch/ (1000 per call)"] = n / (time.perf_counter() - started)

    started = time.perf_counter()
    response = client.post("/api/v1/events/batch/", {"events": [envelope(i, f"b{run}") for i in range(1000)]}, content_type="application/json")
    assert response.json()["summary"]["duplicate"] == 1000
    out["  same 1000 again (all duplicates)"] = 1000 / (time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        sys.exit("Set DATABASE_URL to a scratch database, e.g. postgres://postgres@127.0.0.1:5432/q2c_bench")
    import psycopg

    admin = dsn.rsplit("/", 1)[0] + "/postgres"
    name = dsn.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    baseline = raw_baselines(dsn.replace("postgres://", "postgresql://", 1), args.events)
    measured = product(args.events)
    print(f"\nIngestion, {args.events} events (same machine, same run)\n")
    print(f"{'measure':<48} {'events/s':>12}")
    for label, value in {**baseline, **measured}.items():
        if isinstance(value, tuple):
            print(f"{label:<48} {value[0]:>8.1f} / {value[1]:.1f}")
        else:
            print(f"{label:<48} {value:>12,.0f}")


if __name__ == "__main__":
    main()
