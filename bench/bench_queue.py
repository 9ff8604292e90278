"""Exception-queue benchmark: the page and the API list at 100,000 exceptions, for every filter,
next to raw SQL over the same table measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/q2c_bench_queue python bench/bench_queue.py --rows 100000

Loads the rows with COPY into a scratch database (created and migrated if needed; `--reuse`
skips the load), then times each URL N times through Django's full request stack as an IT
Operations user and prints p50/p95 in milliseconds. No assertions: figures to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "q2c_portal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
os.environ.setdefault("LOG_LEVEL", "ERROR")

CLASSES = ["validation", "mapping", "auth", "rate_limit", "timeout", "unavailable", "conflict", "not_found", "duplicate", "reconciliation"]
SYSTEMS = ["netsuite", "stripe", "salesforce", "hub"]
FLOWS = ["order_activation", "amendment", "renewal", "invoice_posting", "payment_status", "credit_memo", "customer_sync"]
STEPS = ["validate", "erp_customer", "erp_sales_order", "billing_subscription", "erp_invoice", "billing_change"]
ACCOUNTS = ["Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Tyrell", "Cyberdyne"]


def load(rows: int) -> None:
    from django.db import connection

    from sync.models import SyncException

    rng = random.Random(7)
    now = datetime.now(UTC)
    cols = [
        "fingerprint",
        "cause_key",
        "flow_type",
        "step_name",
        "system",
        "error_class",
        "message",
        "field",
        "payload",
        "response",
        "account_name",
        "document_number",
        "amount",
        "currency",
        "revenue_at_risk",
        "status",
        "first_seen",
        "last_seen",
        "occurrences",
        "retries",
        "resolution_note",
    ]
    buf = io.StringIO()
    for i in range(rows):
        status = rng.choices(["open", "retrying", "resolved", "ignored"], [25, 3, 65, 7])[0]
        first = now - timedelta(minutes=rng.randint(1, 90 * 24 * 60))
        cls = rng.choice(CLASSES)
        sku = f"SKU-{rng.randint(1, 60)}"
        amount = rng.randint(100, 120_000)
        doc = f"{rng.choice(['ORD', 'INV', 'AMD'])}-{100000 + i}"
        fp = hashlib.sha256(f"fp{i}".encode()).hexdigest()[:40]
        cause = hashlib.sha256(f"{cls}{sku}".encode()).hexdigest()[:40]
        values = [
            fp,
            cause,
            rng.choice(FLOWS),
            rng.choice(STEPS),
            rng.choice(SYSTEMS),
            cls,
            f"Invalid Field Value {sku} for item.items[0].item ({cls})",
            "item",
            json.dumps({"sku": sku}),
            "{}",
            f"{rng.choice(ACCOUNTS)} {i % 997}",
            doc,
            f"{amount}.00",
            rng.choice(["USD", "EUR", "GBP"]),
            f"{amount}.00",
            status,
            first.isoformat(),
            (first + timedelta(minutes=rng.randint(0, 600))).isoformat(),
            str(rng.randint(1, 20)),
            str(rng.randint(0, 5)),
            "",
        ]
        buf.write("\t".join(v.replace("\t", " ") for v in values) + "\n")
    buf.seek(0)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {SyncException._meta.db_table} CASCADE")
        with cursor.copy(f"COPY {SyncException._meta.db_table} ({', '.join(cols)}) FROM STDIN") as copy:
            copy.write(buf.read())
        cursor.execute(f"ANALYZE {SyncException._meta.db_table}")


def timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--reuse", action="store_true", help="keep the rows already loaded")
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        sys.exit("Set DATABASE_URL to a scratch database, e.g. postgres://postgres@127.0.0.1:5432/q2c_bench_queue")
    import psycopg

    admin, name = dsn.rsplit("/", 1)[0] + "/postgres", dsn.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')

    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    if not args.reuse:
        started = time.perf_counter()
        load(args.rows)
        print(f"loaded {args.rows:,} exceptions with COPY in {time.perf_counter() - started:.1f}s")
    user, _ = User.objects.get_or_create(username="bench-oscar")
    user.groups.set([Group.objects.get(name="IT Operations")])
    client = Client()
    client.force_login(user)

    def sql(q):
        def run():
            with connection.cursor() as cursor:
                cursor.execute(q)
                cursor.fetchall()

        return run

    table = "sync_syncexception"
    results = [
        ("raw SQL: count(*) of all rows", timed(sql(f"SELECT count(*) FROM {table}"), args.runs)),
        ("raw SQL: newest 25 open rows", timed(sql(f"SELECT * FROM {table} WHERE status IN ('open','retrying') ORDER BY last_seen DESC LIMIT 25"), args.runs)),
    ]
    filters = {
        "default (open + retrying)": "",
        "error_class=mapping": "error_class=mapping",
        "system=netsuite": "system=netsuite",
        "flow_type=invoice_posting": "flow_type=invoice_posting",
        "step=erp_invoice": "step=erp_invoice",
        "assignee=none": "assignee=none",
        "currency=EUR": "currency=EUR",
        "amount_min=100000": "amount_min=100000",
        "retries=3": "retries=3",
        "age=7d": "age=7d",
        "account=Globex": "account=Globex",
        "document=INV-1500": "document=INV-1500",
        "q=SKU-42 (message search)": "q=SKU-42",
        "combined: class+system+sort by risk": "error_class=validation&system=netsuite&sort=-revenue_at_risk",
        "status=all, sort by occurrences": "status=all&sort=-occurrences",
        "page 40": "page=40",
    }
    for label, query in filters.items():
        page = timed(lambda q=query: client.get(f"/exceptions/?{q}"), args.runs)
        api = timed(lambda q=query: client.get(f"/api/v1/exceptions/?{q}"), args.runs)
        results.append((f"page /exceptions/ {label}", page))
        results.append((f"API  /api/v1/exceptions/ {label}", api))
    print(f"\nException queue at {args.rows:,} rows, {args.runs} timed requests each (ms)\n")
    print(f"{'measure':<70} {'p50':>8} {'p95':>8}")
    for label, (p50, p95) in results:
        print(f"{label:<70} {p50:>8.1f} {p95:>8.1f}")


if __name__ == "__main__":
    main()
