#!/usr/bin/env python
"""Order activations per second through the whole engine, next to the vendor calls alone.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/q2c .venv/bin/python bench/bench_flows.py --orders 400

What it does, all on this machine:
1. creates fresh databases on the server of DATABASE_URL (default `q2c_bench_flows`, and
   `q2c_bench_flows_sandboxes` for the simulators, as the demo keeps them apart), migrates
   them and seeds the reference data and the ERP catalog;
2. starts the three connector sandboxes (`manage.py run_sandbox`, 2 threads each, on
   sandboxes.settings) and `--workers` Celery worker processes (`-c --concurrency` each, on
   the product's settings) on Redis database 13 of REDIS_URL's server (flushed first: keep
   nothing there);
3. baseline: `--baseline` orders sent straight through the connectors with no engine at all,
   in as many threads as the engine has lanes: ERP customer, billing customer, ERP sales
   order, billing subscription — the four vendor calls an order activation makes;
4. the product: `--orders` closed-won events accepted in one batch (inbox insert + dispatch),
   then the time until every order activation has completed: flows/s overall and per worker
   lane (one lane = one worker child), and each flow's latency from acceptance to activation;
5. checks exactly-once: one sales order and one subscription per order in the sandboxes;
6. the profile, per activation during the engine phase, from PostgreSQL's own counters
   (pg_stat_database, pg_stat_user_tables: transactions, rows written per table; statements from
   pg_stat_statements when the server preloads it: `shared_preload_libraries = 'pg_stat_statements'`)
   and the CPU of the worker, sandbox and PostgreSQL processes, so the sandboxes' own cost is
   apart from the engine's.
No assertion on speed: the figures are printed for people to read (DESIGN.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from support import free_port, fresh_databases, prepare_product_and_sandboxes, sandbox_env, start_sandboxes, stop, with_path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=400)
    p.add_argument("--baseline", type=int, default=100, help="orders sent through the connectors directly")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--concurrency", type=int, default=4, help="children per worker process")
    p.add_argument("--db", default="q2c_bench_flows")
    p.add_argument("--timeout", type=float, default=600)
    return p.parse_args()


def order_event(number: str) -> dict:
    return {
        "id": f"bench-{number}",
        "type": "order.closed_won.v1",
        "source": "crm-relay",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {
            "order_number": number,
            "account": {"external_id": f"001{number}", "name": f"Customer of {number}", "email": f"ap@{number.lower()}.example"},
            "currency": "USD",
            "legal_entity": "US01",
            "closed_won_at": "2026-11-23T10:00:00Z",
            "effective_date": "2026-11-23",
            "lines": [
                {"sku": "PLAT-SEAT", "description": "Platform seats", "quantity": "25", "unit_price": "40.00", "billing": "recurring", "interval": "month"},
                {"sku": "ONBOARD-FEE", "description": "Onboarding", "quantity": "1", "unit_price": "1500.00", "billing": "one_time"},
            ],
        },
    }


# --- the profile: where an activation's time goes, from PostgreSQL's own counters and the processes' CPU
STATEMENTS = "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"


def db_counters(url: str) -> dict:
    """Cumulative counters of one database: transactions, rows written per table, and statements
    when pg_stat_statements is loaded (shared_preload_libraries), else None."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        commits, inserted, updated, deleted = conn.execute(
            "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        tables = dict(conn.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables").fetchall())
        try:
            statements = conn.execute(STATEMENTS).fetchone()[0]
        except psycopg.Error:
            statements = None
    return {"transactions": commits, "inserted": inserted, "updated": updated, "deleted": deleted, "tables": tables, "statements": statements}


def counters_delta(before: dict, after: dict) -> dict:
    out = {k: after[k] - before[k] for k in ("transactions", "inserted", "updated", "deleted")}
    out["statements"] = after["statements"] - before["statements"] if after["statements"] is not None and before["statements"] is not None else None
    out["tables"] = {t: n - before["tables"].get(t, 0) for t, n in after["tables"].items() if n - before["tables"].get(t, 0)}
    return out


def cpu_seconds(procs: list[subprocess.Popen]) -> float:
    """User + system CPU of the process trees (children included, as they are now)."""
    import psutil

    total = 0.0
    for proc in procs:
        try:
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            continue
    return total


def postgres_cpu_seconds() -> float:
    """CPU of every postgres process on this machine (server-wide: anything else using it counts too)."""
    import psutil

    total = 0.0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] and p.info["name"].startswith("postgres"):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
    return total


def enable_statement_counts(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute(STATEMENTS)
        except psycopg.Error:
            pass  # not preloaded here: the profile says so


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    args = parse_args()
    import redis

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/q2c")
    db_url = with_path(server, f"/{args.db}")
    sandbox_db_url = with_path(server, f"/{args.db}_sandboxes")
    redis_url = with_path(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), "/13")
    fresh_databases(server, args.db, f"{args.db}_sandboxes")
    redis.Redis.from_url(redis_url).flushdb()

    ports = {name: free_port() for name in ("salesforce", "netsuite", "stripe")}
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SANDBOX_DATABASE_URL": sandbox_db_url,
        "REDIS_URL": redis_url,
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "sandboxes.settings",
        "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
        **sandbox_env(ports),
        "STRIPE_SANDBOX_WEBHOOK_URL": "",
        "SALESFORCE_SANDBOX_RELAY_URL": "",
    }
    os.environ.update({k: v for k, v in env.items() if isinstance(v, str)})
    import django

    django.setup()
    print(f"preparing {args.db}: migrate, reference data, ERP catalog …", flush=True)
    prepare_product_and_sandboxes()
    enable_statement_counts(db_url)
    procs: list[subprocess.Popen] = []
    try:
        procs += start_sandboxes(ports, env, "bench-sandbox")
        result = run(args, procs, db_url, sandbox_db_url)
    finally:
        stop(procs)
    print_table(args, result)


def run(args, sandboxes: list[subprocess.Popen], db_url: str, sandbox_db_url: str) -> dict:
    # --- baseline: the four vendor calls per order, no engine, as many lanes as the engine has --
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from sync.canonical.store import safe_external_id
    from sync.connectors import registry
    from sync.engine.inbox import accept_canonical
    from sync.models import FlowRun

    lanes = args.workers * args.concurrency
    erp_sub = "1"
    run_id = uuid.uuid4().hex[:6]

    def raw_orders(lane: int) -> None:
        erp, billing = (
            registry.connector_class(registry.system_of("erp")).from_settings(),
            registry.connector_class(registry.system_of("billing")).from_settings(),
        )
        try:
            for i in range(lane, args.baseline, lanes):
                number = f"RAW-{run_id}-{i}"
                event = order_event(number)["data"]
                customer = {
                    "hub_id": f"raw-{i}",
                    "name": event["account"]["name"],
                    "email": event["account"]["email"],
                    "tax_id": "",
                    "currency": "USD",
                    "legal_entity": "US01",
                    "erp_subsidiary_id": erp_sub,
                    "crm_account_id": event["account"]["external_id"],
                    "payment_terms": "",
                }
                erp_customer = erp.upsert_customer(customer=customer, external_id=safe_external_id("CUST", event["account"]["external_id"]))
                bill_customer = billing.upsert_customer(customer=customer, idempotency_key=f"raw:{number}:customer")
                erp.upsert_sales_order(
                    order={**event, "erp_subsidiary_id": erp_sub}, customer_id=erp_customer.external_id, external_id=safe_external_id("SO", number)
                )
                recurring = [line for line in event["lines"] if line["billing"] == "recurring"]
                billing.create_subscription(customer_id=bill_customer.external_id, order={**event, "lines": recurring}, idempotency_key=f"raw:{number}:sub")
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(lanes) as pool:
        list(pool.map(raw_orders, range(lanes)))
    baseline_seconds = time.perf_counter() - started

    # --- the product ----------------------------------------------------------------------------
    workers = []
    for w in range(args.workers):
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "q2c_portal",
                    "worker",
                    "-l",
                    "warning",
                    "-Q",
                    "flows,status,recon,usage",
                    "-c",
                    str(args.concurrency),
                    "--without-heartbeat",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"bench{w}-{run_id}@%h",
                ],
                cwd=ROOT,
                # production settings: DEBUG off, so Django keeps no per-query log in the worker
                env={**os.environ, "DJANGO_SETTINGS_MODULE": "q2c_portal.settings", "DEBUG": "0", "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2},
                stdout=open(ROOT / ".var" / f"bench-worker-{w}.log", "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        from q2c_portal.celery import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=1.0)) < args.workers:  # broadcast over the broker: no result backend needed
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start (see .var/bench-worker-*.log)")
        numbers = [f"ORD-{run_id}-{i}" for i in range(args.orders)]
        time.sleep(1.5)  # what the set-up wrote reaches the statistics first (backends flush at most once a second)
        before = {"hub": db_counters(db_url), "sandboxes": db_counters(sandbox_db_url)}
        cpu_before = {"workers": cpu_seconds(workers), "sandboxes": cpu_seconds(sandboxes), "postgres": postgres_cpu_seconds()}
        accepted_at = time.perf_counter()
        accept_canonical([order_event(n) for n in numbers])
        accept_seconds = time.perf_counter() - accepted_at
        deadline = time.monotonic() + args.timeout
        last = -1
        while True:
            done = FlowRun.objects.filter(flow_type="order_activation", document_number__in=numbers, status__in=["completed", "failed", "cancelled"]).count()
            if done != last:
                print(f"  … {done:,} of {args.orders:,} orders activated ({time.perf_counter() - accepted_at:.1f}s)", flush=True)
                last = done
            if done >= args.orders or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        engine_seconds = time.perf_counter() - accepted_at
        cpu = {"workers": cpu_seconds(workers), "sandboxes": cpu_seconds(sandboxes), "postgres": postgres_cpu_seconds()}
        cpu = {k: v - cpu_before[k] for k, v in cpu.items()}
        time.sleep(1.5)  # backends flush their statistics at most once a second
        profile = {name: counters_delta(before[name], db_counters(url)) for name, url in (("hub", db_url), ("sandboxes", sandbox_db_url))}
    finally:
        stop(workers)

    runs = list(FlowRun.objects.filter(flow_type="order_activation", document_number__in=numbers).values("status", "finished_at", "inbox_event__received_at"))
    latencies = [(r["finished_at"] - r["inbox_event__received_at"]).total_seconds() for r in runs if r["status"] == "completed" and r["finished_at"]]
    from sandboxes.netsuite.models import ExternalIdLedger
    from sandboxes.stripe.simulate import count_objects

    so_creates = sum(ExternalIdLedger.objects.filter(record_type="salesOrder", external_id__startswith=f"SO-ORD-{run_id}-").values_list("creates", flat=True))
    subs = sum(count_objects("subscription", order_number=n) for n in numbers[:50])
    return {
        "baseline_seconds": baseline_seconds,
        "accept_seconds": accept_seconds,
        "engine_seconds": engine_seconds,
        "completed": sum(1 for r in runs if r["status"] == "completed"),
        "failed": sum(1 for r in runs if r["status"] != "completed"),
        "latencies": latencies,
        "so_creates": so_creates,
        "subs_first_50": subs,
        "profile": profile,
        "cpu": cpu,
    }


def print_table(args, r: dict) -> None:
    lanes = args.workers * args.concurrency
    base_rate = args.baseline / r["baseline_seconds"]
    rate = r["completed"] / r["engine_seconds"] if r["engine_seconds"] else 0
    lat = r["latencies"] or [0]
    rows = [
        (f"baseline: the 4 vendor calls per order, no engine, {lanes} lanes", f"{base_rate:,.1f} orders/s", f"{base_rate / lanes:,.1f} per lane"),
        (f"engine: {args.orders:,} closed-won events accepted (1 batch)", f"{args.orders / r['accept_seconds']:,.0f} events/s", ""),
        (f"engine: order activations, {args.workers}×{args.concurrency} = {lanes} lanes", f"{rate:,.1f} orders/s", f"{rate / lanes:,.1f} per lane"),
        ("  acceptance → activated, p50 / p95 / max", f"{statistics.median(lat):,.1f} / {pct(lat, 0.95):,.1f} / {max(lat):,.1f} s", ""),
        ("  completed / not completed", f"{r['completed']:,} / {r['failed']:,}", ""),
        ("  ERP sales orders created (once each)", f"{r['so_creates']:,}", "= orders" if r["so_creates"] == r["completed"] else "≠ orders!"),
        (
            f"  Stripe subscriptions, first {min(50, args.orders)} orders",
            f"{r['subs_first_50']:,}",
            "once each" if r["subs_first_50"] == min(50, args.orders) else "NOT once each!",
        ),
    ]
    width = max(len(a) for a, _, _ in rows)
    print_profile(args, r)
    print(f"\nOrder activation throughput · {os.cpu_count()} CPU cores shared by PostgreSQL, Redis, 3 sandboxes, the workers and this script\n")
    for a, b, c in rows:
        print(f"{a:{width}}  {b:>24}  {c}")


def print_profile(args, r: dict) -> None:
    """Per activation during the engine phase (everything the flows started counts: the activation,
    its CRM write-back, the outbox): PostgreSQL's own counters and the CPU of each process group."""
    n = max(r["completed"], 1)
    print(f"\nProfile · per order activation, over {n:,} completed ({r['engine_seconds']:.1f} s of wall clock)\n")
    for name, p in r["profile"].items():
        statements = f"{p['statements'] / n:,.1f} statements, " if p["statements"] is not None else "statements n/a (pg_stat_statements not preloaded), "
        print(
            f"  {name:<10} {statements}{p['transactions'] / n:,.1f} transactions, rows inserted {p['inserted'] / n:,.1f}, "
            f"updated {p['updated'] / n:,.1f}, deleted {p['deleted'] / n:,.1f}"
        )
        top = sorted(p["tables"].items(), key=lambda kv: -kv[1])[:8]
        print("             rows written by table: " + ", ".join(f"{t} {v / n:,.1f}" for t, v in top))
    cpu = r["cpu"]
    wall = r["engine_seconds"] or 1
    print(
        f"  CPU        workers {cpu['workers'] / n * 1000:,.0f} ms, sandboxes {cpu['sandboxes'] / n * 1000:,.0f} ms, "
        f"PostgreSQL (server-wide) {cpu['postgres'] / n * 1000:,.0f} ms per activation; "
        f"together {sum(cpu.values()) / wall:,.2f} of {os.cpu_count()} cores busy"
    )


if __name__ == "__main__":
    main()
