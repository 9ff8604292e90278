#!/usr/bin/env python
"""KPI API and dashboard response times at volume, next to a raw-SQL baseline in the same run.

    .venv/bin/python bench/bench_kpis.py                     # 1.07M flow runs, 5.0M steps
    .venv/bin/python bench/bench_kpis.py --runs 100000       # smaller
    .venv/bin/python bench/bench_kpis.py --reuse --requests 30   # time again without reloading

What it does:
1. creates a separate database (default `q2c_bench`, on the server of DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432) and migrates it;
2. loads flow runs over `--days` days (order activations, amendments, renewals, invoices,
   payments, customer syncs; ~0.3 % still in flight, ~2 % with an exception), their steps
   (≈ 5 per run), exceptions and a week of connector calls — all with COPY;
3. applies the proposed sync indexes (PROPOSED_SYNC_INDEXES below; `--no-proposed-indexes`
   to measure without them) and ANALYZEs;
4. times N requests (after warm-up) of the KPI API and of every dashboard page through the
   whole Django stack (test client: middleware, auth, selectors, templates, Plotly), and
   the same number of raw-SQL baseline queries, and prints p50/p95 in ms.
No assertion: the figures are for people to read (DESIGN.md: speed is reported, not asserted).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Indexes on sync tables the KPI queries want. They are created here, in the bench database
# only; the exact Meta lines for sync/models/engine.py are in the comments (sync is not ours).
PROPOSED_SYNC_INDEXES = [
    # FlowRun.Meta.indexes: models.Index(fields=["flow_type", "sla_due_at"], name="flowrun_type_sla_due_idx")
    "CREATE INDEX IF NOT EXISTS flowrun_type_sla_due_idx ON sync_flowrun (flow_type, sla_due_at)",
    # FlowRun.Meta.indexes: models.Index(fields=["sla_due_at"], name="flowrun_sla_due_idx")
    "CREATE INDEX IF NOT EXISTS flowrun_sla_due_idx ON sync_flowrun (sla_due_at)",
    # FlowStep.Meta.indexes: models.Index(fields=["started_at"], name="step_retried_idx", condition=Q(attempts__gt=1))
    "CREATE INDEX IF NOT EXISTS step_retried_idx ON sync_flowstep (started_at) WHERE attempts > 1",
    # FlowRun.Meta.indexes: models.Index(fields=["business_started_at"], name="flowrun_started_idx")
    "CREATE INDEX IF NOT EXISTS flowrun_started_idx ON sync_flowrun (business_started_at)",
]

FLOW_MIX = [
    ("order_activation", 40),
    ("amendment", 10),
    ("renewal", 4),
    ("invoice_posting", 25),
    ("payment_status", 10),
    ("customer_sync", 8),
    ("credit_memo", 3),
]
STEPS = {
    "order_activation": [
        ("validate", "hub"),
        ("erp_customer", "netsuite"),
        ("billing_customer", "stripe"),
        ("erp_sales_order", "netsuite"),
        ("billing_subscription", "stripe"),
        ("crm_status", "hub"),
    ],
    "amendment": [("validate", "hub"), ("billing_change", "stripe"), ("erp_change", "netsuite"), ("crm_status", "hub")],
    "renewal": [("validate", "hub"), ("billing_renewal", "stripe"), ("erp_renewal", "netsuite"), ("crm_status", "hub")],
    "invoice_posting": [("map_invoice", "hub"), ("erp_customer", "netsuite"), ("erp_invoice", "netsuite"), ("crm_status", "hub")],
    "payment_status": [("map_payment", "hub"), ("erp_payment", "netsuite"), ("crm_status", "hub")],
    "customer_sync": [("match", "hub"), ("erp_customer", "netsuite"), ("billing_customer", "stripe"), ("crm_ids", "hub")],
    "credit_memo": [("map_credit_memo", "hub"), ("erp_customer", "netsuite"), ("erp_credit_memo", "netsuite"), ("crm_status", "hub")],
}
SLA = {"order_activation": 900, "amendment": 1800, "renewal": 3600, "invoice_posting": 3600, "payment_status": 900}
MEDIAN = {"order_activation": 420, "invoice_posting": 300, "amendment": 360, "renewal": 720}
ENTITIES = [("US01", "USD", "1"), ("DE01", "EUR", "1.08"), ("UK01", "GBP", "1.27")]
PAGES = [
    ("KPI API", "/api/v1/kpis/"),
    ("Overview", "/"),
    ("Orders", "/orders/"),
    ("Amendments", "/amendments/"),
    ("Invoices", "/invoices/"),
    ("SLA", "/sla/"),
    ("Connectors", "/connectors/"),
    ("Overview (htmx tiles)", "/#kpis"),
    ("Overview trends (htmx, loaded by /)", "/?part=trends#trends"),
    # for reference: the target is for the default window; work grows with the window's rows
    ("Overview, 90-day window", "/?days=90"),
    ("Orders, 90-day window", "/orders/?days=90"),
    ("Orders, entity DE01", "/orders/?entity=DE01"),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # the issue's volume is 1M runs and 5M steps; the real flows' step counts average ~4.7 a
    # run, so 1.07M runs make both true at once
    p.add_argument("--runs", type=int, default=1_070_000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--requests", type=int, default=20, help="timed requests per page (after 2 warm-ups)")
    p.add_argument("--db", default="q2c_bench")
    p.add_argument("--reuse", action="store_true", help="keep the loaded data if the database already has it")
    p.add_argument("--no-proposed-indexes", action="store_true")
    p.add_argument("--no-rollups", action="store_true", help="read raw flow runs only (KPI_ROLLUPS=0): the pre-rollup figures")
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args()


def dated_pages() -> list[tuple[str, str]]:
    """Pages whose window is dates relative to today: a past month (From–To, To included), whose
    open exceptions are counted at its end, and whose previous month is compared."""
    from django.utils import timezone

    today = timezone.localdate()
    first, last = today - timedelta(days=75), today - timedelta(days=46)
    return [
        ("Overview, a past 30 days (From–To)", f"/?start={first:%Y-%m-%d}&end={last:%Y-%m-%d}"),
        ("Exception queue (with steps waiting to retry)", "/exceptions/"),
        ("Outage banner (htmx, every page every 15 s)", "/live/banner/"),
        ("Health (/healthz, with the connectors)", "/healthz"),
    ]


def mark_waiting_steps(n: int = 500) -> int:
    """Steps waiting to retry, as during an outage: the pending steps of n in-flight runs."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE sync_flowstep SET status = 'retry', next_attempt_at = now() + (random() * interval '5 minutes'), "
            "error_class = 'unavailable', error_message = 'bench: the service is temporarily unavailable', attempts = 2 "
            "WHERE id IN (SELECT id FROM sync_flowstep WHERE status IN ('pending', 'retry') ORDER BY id LIMIT %s)",
            [n],
        )
        return cursor.rowcount


def server_url(dbname: str) -> str:
    base = urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/q2c"))
    return urlunparse(base._replace(path=f"/{dbname}"))


def ensure_database(name: str, fresh: bool) -> None:
    import psycopg

    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}"')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(dbname: str) -> None:
    os.environ["DATABASE_URL"] = server_url(dbname)
    os.environ.setdefault("DEBUG", "1")
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "q2c_portal.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


NULL = "\\N"  # COPY text format


def _ts(dt: datetime) -> str:
    return dt.isoformat()


def load(runs: int, days: int, seed: int) -> dict:
    """COPY flow runs, steps, exceptions and connector calls; returns the row counts."""
    from django.db import connection

    rng = random.Random(seed)
    now = datetime.now(UTC)
    start = now - timedelta(days=days)
    types = [t for t, _ in FLOW_MIX]
    weights = [w for _, w in FLOW_MIX]
    run_cols = (
        "id, flow_type, status, correlation_id, idempotency_key, document_number, account_name, legal_entity, amount, currency, amount_reporting, "
        "context, created_at, parked_reason, current_step, waits_for, business_started_at, business_completed_at, started_at, finished_at, "
        "sla_due_at, sla_breached, had_exception, retries"
    )
    step_cols = "flow_run_id, seq, name, system, status, idempotency_key, attempts, started_at, finished_at, request_summary, response_summary, error_class, error_message, compensation"
    exc_cols = (
        "fingerprint, cause_key, flow_run_id, flow_type, step_name, system, error_class, message, field, payload, response, account_name, document_number, "
        "amount, currency, revenue_at_risk, status, first_seen, last_seen, occurrences, retries, resolution_note, resolved_at"
    )
    steps_n = exc_n = 0
    t0 = time.monotonic()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3
        exc_rows: list[str] = []
        chunk = 50_000  # COPY the runs of a chunk, then their steps (one COPY at a time per connection)
        for first in range(1, runs + 1, chunk):
            runs_buf, steps_buf = io.StringIO(), io.StringIO()
            for i in range(first, min(first + chunk, runs + 1)):
                flow_type = rng.choices(types, weights)[0]
                started = start + timedelta(seconds=(i / runs) * days * 86400 + rng.uniform(0, 60))
                entity, currency, rate = ENTITIES[rng.choices([0, 1, 2], [6, 3, 1])[0]]
                amount = rng.choice((400, 800, 1200, 4800, 12000, 36000, 120000))
                median = MEDIAN.get(flow_type, 60)
                duration = median * rng.lognormvariate(0, 0.8)
                fails = rng.random() < 0.02
                if fails:
                    duration *= rng.uniform(3, 40)
                age = (now - started).total_seconds()
                active = duration > age or (fails and age < 30 * 86400 and rng.random() < 0.15)
                status = ("failed" if fails else "running") if active else "completed"
                done = None if active else started + timedelta(seconds=duration)
                sla = SLA.get(flow_type)
                due = started + timedelta(seconds=sla) if sla else None
                breached = bool(due and ((done and done > due) or (not done and due < now)))
                runs_buf.write(
                    f"{i}\t{flow_type}\t{status}\t{uuid.UUID(int=rng.getrandbits(128))}\tbench:{i}\tDOC-{i}\tAccount {i % 5000}\t{entity}\t{amount}\t{currency}\t"
                    f"{amount * float(rate):.2f}\t{{}}\t{_ts(started)}\t\t{'' if done else 'erp_step'}\t\t{_ts(started)}\t{_ts(done) if done else NULL}\t"
                    f"{_ts(started)}\t{_ts(done) if done else NULL}\t{_ts(due) if due else NULL}\t{'t' if breached else 'f'}\t{'t' if fails else 'f'}\t{1 if fails else 0}\n"
                )
                plan = STEPS[flow_type]
                span = duration / len(plan)
                for seq, (name, system) in enumerate(plan, 1):
                    s_start = started + timedelta(seconds=span * (seq - 1))
                    failed_here = fails and seq == len(plan) - 1
                    s_status = "failed" if failed_here and active else ("pending" if active and seq > len(plan) - 1 else "succeeded")
                    attempts = rng.choice((2, 3, 5)) if failed_here else 1
                    steps_buf.write(
                        f"{i}\t{seq}\t{name}\t{system}\t{s_status}\tq2c-bench:{i}:{name}\t{attempts}\t{_ts(s_start)}\t"
                        f"{_ts(s_start + timedelta(seconds=span)) if s_status == 'succeeded' else NULL}\t{{}}\t{{}}\t{'timeout' if failed_here else ''}\t"
                        f"{'Read timed out' if failed_here else ''}\t\n"
                    )
                    steps_n += 1
                    if failed_here:
                        exc_status = "open" if active else "resolved"
                        exc_rows.append(
                            f"fp-{i}\tcause-{system}-timeout\t{i}\t{flow_type}\t{name}\t{system}\ttimeout\tRead timed out\t\t{{}}\t{{}}\tAccount {i % 5000}\tDOC-{i}\t"
                            f"{amount}\t{currency}\t{amount * float(rate):.2f}\t{exc_status}\t{_ts(s_start)}\t{_ts(s_start + timedelta(minutes=5))}\t{attempts}\t0\t\t"
                            f"{_ts(done) if done else NULL}\n"
                        )
            with raw.copy(f"COPY sync_flowrun ({run_cols}) FROM STDIN") as copy:
                copy.write(runs_buf.getvalue())
            with raw.copy(f"COPY sync_flowstep ({step_cols}) FROM STDIN") as copy:
                copy.write(steps_buf.getvalue())
            print(f"  … {min(first + chunk - 1, runs):,} runs, {steps_n:,} steps ({time.monotonic() - t0:.0f}s)", flush=True)
        with raw.copy(f"COPY sync_syncexception ({exc_cols}) FROM STDIN") as exc_copy:
            for row in exc_rows:
                exc_copy.write(row)
        exc_n = len(exc_rows)
        calls = 0
        with raw.copy("COPY sync_connectorcall (system, operation, at, status_code, error_class, latency_ms) FROM STDIN") as call_copy:
            for k in range(7 * 24 * 60 * 3):  # a week, one call per system every 20 s on average
                at = now - timedelta(seconds=k * 20 + rng.uniform(0, 20))
                system = ("salesforce", "netsuite", "stripe")[k % 3]
                err = rng.choice(("rate_limit", "timeout")) if rng.random() < 0.03 else ""
                call_copy.write(f"{system}\trequest\t{_ts(at)}\t{429 if err == 'rate_limit' else 200}\t{err}\t{int(200 * rng.lognormvariate(0, 0.6))}\n")
                calls += 1
        cursor.execute("SELECT setval(pg_get_serial_sequence('sync_flowrun', 'id'), (SELECT max(id) FROM sync_flowrun))")
    print(f"loaded {runs:,} runs, {steps_n:,} steps, {exc_n:,} exceptions, {calls:,} connector calls in {time.monotonic() - t0:.0f}s", flush=True)
    return {"runs": runs, "steps": steps_n}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered), p95


def time_it(fn, n: int) -> tuple[float, float]:
    for _ in range(2):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return percentiles(samples)


def main() -> None:
    args = parse_args()
    ensure_database(args.db, fresh=not args.reuse)
    setup_django(args.db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sync_flowrun")
        have = cursor.fetchone()[0]
    if have < args.runs:
        if have:
            sys.exit(f"{args.db} holds {have:,} runs, fewer than --runs; run without --reuse to reload")
        load(args.runs, args.days, args.seed)
    with connection.cursor() as cursor:
        if not args.no_proposed_indexes:
            for sql in PROPOSED_SYNC_INDEXES:
                cursor.execute(sql)
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM sync_flowrun")
        runs = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM sync_flowstep")
        steps = cursor.fetchone()[0]

    # KPI rollups (monitoring/kpis/rollups.py): what beat does every minute. The first refresh builds
    # every hour of history; the next ones recompute only new and dirty hours.
    from monitoring.kpis import rollups

    if args.no_rollups:
        rollups.reset()
        os.environ["KPI_ROLLUPS"] = "0"
        from django.conf import settings as dj_settings

        dj_settings.KPI_ROLLUPS = False
    else:
        t = time.perf_counter()
        built = rollups.refresh()
        print(
            f"rollup refresh: {built['hours']:,} hours, {built['dirty']:,} dirty, {(time.perf_counter() - t) * 1000:,.0f} ms"
            f"{' (initial build)' if built['hours'] > 48 else ''}",
            flush=True,
        )
        with connection.cursor() as cursor:  # a late event: an order activated two days late
            cursor.execute(
                "UPDATE sync_flowrun SET business_completed_at = business_completed_at + interval '1 minute' "
                "WHERE id = (SELECT id FROM sync_flowrun WHERE status = 'completed' AND business_started_at < now() - interval '2 days' "
                "ORDER BY business_started_at DESC LIMIT 1)"
            )
            cursor.execute("ANALYZE monitoring_flowrollup")
        t = time.perf_counter()
        again = rollups.refresh()
        print(f"rollup refresh after one late event: {again['hours']:,} hour(s) recomputed, {(time.perf_counter() - t) * 1000:,.0f} ms", flush=True)

    print(f"{mark_waiting_steps():,} steps waiting to retry", flush=True)
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True, "is_staff": True})
    client = Client()
    client.force_login(user)

    def baseline_count():
        with connection.cursor() as c:
            c.execute("SELECT count(*) FROM sync_flowrun")
            c.fetchone()

    def baseline_percentile():
        with connection.cursor() as c:
            c.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM business_completed_at - business_started_at)) "
                "FROM sync_flowrun WHERE flow_type = 'order_activation' AND business_completed_at >= now() - interval '30 days'"
            )
            c.fetchone()

    rows = [
        ("baseline: SELECT count(*) FROM sync_flowrun", *time_it(baseline_count, args.requests)),
        ("baseline: one percentile_cont, orders, 30 days", *time_it(baseline_percentile, args.requests)),
    ]
    for label, path in PAGES + dated_pages():
        headers = {}
        if "#" in path:  # an htmx request for one region of the page
            path, target = path.split("#")
            headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}

        def get(path=path, headers=headers):
            response = client.get(path, **headers)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}")

        rows.append((f"{label}  GET {path}", *time_it(get, args.requests)))

    width = max(len(r[0]) for r in rows)
    print(
        f"\n{runs:,} flow runs, {steps:,} steps · {args.requests} requests each after 2 warm-ups · "
        f"proposed sync indexes {'OFF' if args.no_proposed_indexes else 'ON'} · rollups {'OFF' if args.no_rollups else 'ON'} · "
        f"default window: last 30 days\n"
    )
    print(f"{'':{width}}  {'p50 ms':>8}  {'p95 ms':>8}")
    for label, p50, p95 in rows:
        print(f"{label:{width}}  {p50:8.1f}  {p95:8.1f}")


if __name__ == "__main__":
    main()
