#!/usr/bin/env python
"""Reconciliation at volume: a whole run over N customers, next to a raw baseline in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/q2c .venv/bin/python bench/bench_recon.py --customers 100000
    .venv/bin/python bench/bench_recon.py --customers 10000 --reuse     # time again without reseeding

What it does, all on this machine:
1. creates fresh databases on the server of DATABASE_URL (default `q2c_bench_recon` for the
   product, `q2c_bench_recon_sandboxes` for the simulators) and migrates them;
2. seeds the three sandboxes with N customers and their documents (sandboxes/kit/books_seed:
   CRM account, order, order products, contract; Stripe customer, subscription, invoice;
   NetSuite customer, sales order, invoice — ~7 records per customer) and plants one break
   every `--break-every` customers (ERP invoice deleted, amount edited, subscription cancelled
   in turn);
3. starts the three sandboxes as servers (`manage.py run_sandbox`);
4. baseline, in a process of its own: the same rows read with one SQL query per system
   straight from the simulators' tables (server-side cursor, rows fetched and dropped);
5. the product, in a process of its own: one reconciliation run (sync.reconciliation.runs.execute,
   the task's body) reading every system through its connector over HTTP, comparing, writing
   breaks and exceptions;
and prints duration, records/s and peak RSS (VmHWM of that process; the sandboxes' own
memory is theirs, not the product's) of both. No assertion: figures are for people (DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from support import ROOT, SANDBOXES, free_port, fresh_databases, sandbox_env, start_sandboxes, stop, with_path

sys.path.insert(0, str(ROOT))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--break-every", type=int, default=200, help="plant one break every this many customers")
    p.add_argument("--db", default="q2c_bench_recon")
    p.add_argument("--reuse", action="store_true", help="keep the databases and their data (skip 1–2)")
    p.add_argument("--phase", choices=["baseline", "recon"], help=argparse.SUPPRESS)
    return p.parse_args()


PREFIX = "BN"


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the two measured phases (each in a process of its own) -------------------------------------
BASELINE_QUERIES = {
    "crm": "SELECT id, fields FROM {sf} WHERE sobject IN ('Account', 'Contract', 'Order', 'OrderItem', 'Product2') AND NOT is_deleted",
    "billing": "SELECT id, data FROM {stripe} WHERE object IN ('subscription', 'invoice')",
    "erp": "SELECT id, data FROM {ns} WHERE record_type IN ('salesOrder', 'invoice')",
}


def phase_baseline() -> dict:
    import django

    django.setup()
    from django.db import connections

    from sandboxes.db import DB
    from sandboxes.netsuite.models import Record
    from sandboxes.salesforce.models import SRecord
    from sandboxes.stripe.models import StripeObject

    tables = {"sf": SRecord._meta.db_table, "stripe": StripeObject._meta.db_table, "ns": Record._meta.db_table}
    start = time.perf_counter()
    rows = {}
    for role, sql in BASELINE_QUERIES.items():
        n = 0
        with connections[DB].chunked_cursor() as cursor:
            cursor.execute(sql.format(**tables))
            while batch := cursor.fetchmany(2000):
                n += len(batch)
        rows[role] = n
    return {"seconds": time.perf_counter() - start, "records": rows, "peak_rss_mb": peak_rss_mb()}


def phase_recon() -> dict:
    import django

    django.setup()
    from sync.models import ReconciliationRun
    from sync.reconciliation.runs import execute, request_run

    run = request_run(trigger=ReconciliationRun.Trigger.API, dispatch=False)
    profile = None
    if os.environ.get("BENCH_PROFILE"):  # BENCH_PROFILE=1: the run's cProfile top 40 in .var/bench-recon.prof.txt
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    start = time.perf_counter()
    run = execute(run.pk)
    seconds = time.perf_counter() - start
    if profile is not None:
        import io
        import pstats

        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
        (ROOT / ".var" / "bench-recon.prof.txt").write_text(text.getvalue())
    return {
        "seconds": seconds,
        "records": run.records,
        "documents": run.documents_checked,
        "customers": run.customers_checked,
        "breaks": run.breaks_found,
        "by_type": {k: v["count"] for k, v in run.breaks_by_type.items()},
        "match_rate": str(run.match_rate),
        "peak_rss_mb": peak_rss_mb(),
    }


# --- setup ---------------------------------------------------------------------------------------
def plant(n: int, every: int) -> dict:
    from sandboxes.kit.books_seed import doc, stripe_ids
    from sandboxes.netsuite.models import Record
    from sandboxes.stripe.models import StripeObject

    planted = {"missing_in_erp": 0, "amount_mismatch": 0, "status_mismatch": 0}
    for k, i in enumerate(range(every // 2, n, every)):
        d = doc(i, PREFIX)
        kind = list(planted)[k % 3]
        if kind == "missing_in_erp":
            Record.objects.filter(record_type="invoice", external_id=f"INV-{d.invoice_number}").delete()
        elif kind == "amount_mismatch":
            record = Record.objects.get(record_type="invoice", external_id=f"INV-{d.invoice_number}")
            record.data = {**record.data, "total": d.invoice_total + 10}
            record.save()
        else:
            sub = StripeObject.objects.get(id=stripe_ids(i, PREFIX)["subscription"])
            sub.data = {**sub.data, "status": "canceled"}
            sub.save()
        planted[kind] += 1
    return planted


def main() -> None:
    args = parse_args()
    if args.phase:
        result = phase_baseline() if args.phase == "baseline" else phase_recon()
        print("RESULT " + json.dumps(result, default=str), flush=True)
        return
    import psycopg

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/q2c")
    db_url, sandbox_db_url = with_path(server, f"/{args.db}"), with_path(server, f"/{args.db}_sandboxes")
    if not args.reuse:
        fresh_databases(server, args.db, f"{args.db}_sandboxes")
    ports = {name: free_port() for name in SANDBOXES}
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SANDBOX_DATABASE_URL": sandbox_db_url,
        "REDIS_URL": with_path(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), "/13"),
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "sandboxes.settings",
        "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
        **sandbox_env(ports),
        "STRIPE_SANDBOX_WEBHOOK_URL": "",
        "SALESFORCE_SANDBOX_RELAY_URL": "",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    if not args.reuse:
        print(f"preparing {args.db}: migrate, seed {args.customers:,} customers in three sandboxes …", flush=True)
        call_command("migrate", verbosity=0)
        call_command("migrate", database="sandboxes", verbosity=0)
        from sandboxes.kit.books_seed import seed_books

        started = time.perf_counter()
        seed_books(args.customers, prefix=PREFIX)
        planted = plant(args.customers, args.break_every)
        print(f"  seeded in {time.perf_counter() - started:.0f} s; planted {planted}", flush=True)
        with psycopg.connect(sandbox_db_url, autocommit=True) as conn:
            conn.execute("ANALYZE")
    procs: list[subprocess.Popen] = []
    try:
        procs = start_sandboxes(ports, env, "bench-recon")
        results = {}
        for phase in ("baseline", "recon"):
            print(f"{phase} …", flush=True)
            out = subprocess.run([sys.executable, __file__, "--phase", phase], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{phase} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            results[phase] = json.loads(line[7:])
    finally:
        stop(procs, timeout=20)
    base, recon = results["baseline"], results["recon"]
    base_n, recon_n = sum(base["records"].values()), sum(recon["records"].values())
    print()
    print(f"reconciliation of {args.customers:,} customers (CRM orders + products, billing subscriptions + invoices, ERP sales orders + invoices)")
    print(f"{'':34} {'records':>10} {'seconds':>9} {'records/s':>10} {'peak RSS':>10}")
    print(f"{'raw baseline (1 SQL query/system)':34} {base_n:>10,} {base['seconds']:>9.1f} {base_n / base['seconds']:>10,.0f} {base['peak_rss_mb']:>7.0f} MB")
    print(
        f"{'reconciliation run (connectors)':34} {recon_n:>10,} {recon['seconds']:>9.1f} {recon_n / recon['seconds']:>10,.0f} {recon['peak_rss_mb']:>7.0f} MB"
    )
    print(f"  per system: {recon['records']}; documents compared {recon['documents']:,}, customers {recon['customers']:,}")
    print(f"  breaks {recon['breaks']:,} {recon['by_type']}; match rate {recon['match_rate']} %")


if __name__ == "__main__":
    main()
