"""The vendor simulators stay outside the product.

The product started with production settings installs none of the simulator apps, imports
nothing from `sandboxes/` and would migrate none of their tables; under `sandboxes.settings`
the simulators keep their tables and their transactions on a database of their own.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR_APPS = {"sandboxes.kit", "sandboxes.salesforce", "sandboxes.netsuite", "sandboxes.stripe", "sandboxes.business_central"}
SIMULATOR_LABELS = {"sandbox_kit", "salesforce_sandbox", "netsuite_sandbox", "stripe_sandbox", "business_central_sandbox"}


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def production_env(**extra: str) -> dict[str, str]:
    """The environment of a production start: DEBUG off, real-looking secrets, no test settings."""
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "SANDBOX_URLCONF"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "q2c_portal.settings",
            "DEBUG": "0",
            "SECRET_KEY": "x" * 64 + "-prod-like-secret-key",
            "ALLOWED_HOSTS": "q2c.example.com",
            "SALESFORCE_CLIENT_ID": "3MVG9prod-like-client-id",
            "SALESFORCE_CLIENT_SECRET": "prod-sf-client-secret",
            "SALESFORCE_WEBHOOK_SECRET": "prod-sf-relay-secret",
            "NETSUITE_ACCOUNT_ID": "7654321",
            "NETSUITE_CONSUMER_KEY": "prod-ns-consumer-key",
            "NETSUITE_CONSUMER_SECRET": "prod-ns-consumer-secret",
            "NETSUITE_TOKEN_ID": "prod-ns-token-id",
            "NETSUITE_TOKEN_SECRET": "prod-ns-token-secret",
            "STRIPE_API_KEY": "sk_live_prod_like",
            "STRIPE_WEBHOOK_SECRET": "whsec_prod_like",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def scratch_databases():
    """Empty databases on the test server, dropped afterwards: scratch_databases('product')."""
    server = settings.DATABASE_URL
    created: list[str] = []

    def make(role: str) -> str:
        name = f"q2c_separation_{uuid.uuid4().hex[:8]}_{role}"
        with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return with_database(server, name)

    yield make
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


PRODUCT_START = """
import json, sys
import django
django.setup()
from django.apps import apps
from django.conf import settings
from django.urls import get_resolver
get_resolver().url_patterns  # the product's URLconf and every view module it imports
from q2c_portal.celery import app
app.loader.import_default_modules()  # and every task module
print(json.dumps({
    "installed": list(settings.INSTALLED_APPS),
    "labels": [c.label for c in apps.get_app_configs()],
    "routers": list(settings.DATABASE_ROUTERS),
    "databases": sorted(settings.DATABASES),
    "sandbox_modules": sorted(m for m in sys.modules if m == "sandboxes" or m.startswith("sandboxes.")),
}))
"""


def test_the_product_started_with_production_settings_installs_and_imports_no_simulator():
    report = json.loads(run([sys.executable, "-c", PRODUCT_START], production_env()).stdout.strip().splitlines()[-1])

    assert not SIMULATOR_APPS & set(report["installed"]), report["installed"]
    assert not [app for app in report["installed"] if "sandbox" in app]
    assert not SIMULATOR_LABELS & set(report["labels"])
    assert {"sync", "monitoring"} <= set(report["labels"])
    assert report["databases"] == ["default"] and report["routers"] == []
    assert report["sandbox_modules"] == []


def test_the_products_migration_plan_under_production_settings_has_no_simulator_migration(scratch_databases):
    env = production_env(DATABASE_URL=scratch_databases("product"))

    plan = run([sys.executable, "manage.py", "migrate", "--plan"], env).stdout

    planned = {line.strip().split(".", 1)[0] for line in plan.splitlines() if line.strip() and not line.startswith(" ") and "." in line}
    assert {"sync", "monitoring", "auth"} <= planned, plan
    assert not SIMULATOR_LABELS & planned, plan
    assert "sandbox" not in plan


STRIPE_IDEMPOTENT_CREATE = """
from django.conf import settings
from django.test import Client
client = Client(HTTP_AUTHORIZATION="Bearer " + settings.CONNECTORS["stripe"]["api_key"])
first, again = (client.post("/v1/customers", "name=Acme", content_type="application/x-www-form-urlencoded", HTTP_IDEMPOTENCY_KEY="k-1") for _ in range(2))
print(first.status_code, again.status_code, again.headers.get("Idempotent-Replayed"), first.json()["id"] == again.json()["id"])
"""


def test_the_simulators_keep_their_tables_and_transactions_on_their_own_database(scratch_databases):
    """As bin/run-demo sets them up: the simulators' database with `migrate --database sandboxes`
    under sandboxes.settings (first here: it needs nothing of the product's database), the
    product's with production settings; then demo traffic and a sandbox API call under
    sandboxes.settings, with the hub unreachable (relayed events stay pending)."""
    product_db, sandbox_db = scratch_databases("product"), scratch_databases("sandboxes")
    env = production_env(DATABASE_URL=product_db)
    sandbox_env = {
        **env,
        "SANDBOX_DATABASE_URL": sandbox_db,
        "SECURE_SSL_REDIRECT": "0",
        "SALESFORCE_SANDBOX_RELAY_URL": "http://127.0.0.1:9/",
        "STRIPE_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/",
    }
    run([sys.executable, "manage.py", "migrate", "--no-input", "-v0", "--settings", "sandboxes.settings", "--database", "sandboxes"], sandbox_env)
    assert tables(product_db) == set()
    run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], env)
    product_tables_before = tables(product_db)

    traffic = run(
        [sys.executable, "manage.py", "demo_traffic", "--settings", "sandboxes.settings", "--ticks", "2", "--interval", "0", "--seed", "7"], sandbox_env
    )
    api_call = run(
        [sys.executable, "manage.py", "shell", "--no-imports", "--settings", "sandboxes.settings", "-c", STRIPE_IDEMPOTENT_CREATE],
        {**sandbox_env, "SANDBOX_URLCONF": "sandboxes.stripe.urls", "ALLOWED_HOSTS": "testserver"},
    )

    assert "demo tick" not in traffic.stderr, traffic.stderr
    assert api_call.stdout.strip().splitlines()[-1].split() == ["200", "200", "true", "True"], api_call.stdout + api_call.stderr
    assert tables(product_db) == product_tables_before
    assert not [t for t in product_tables_before if t.startswith(tuple(SIMULATOR_LABELS))]
    simulator_tables = tables(sandbox_db) - {"django_migrations"}
    assert simulator_tables and all(t.startswith(tuple(SIMULATOR_LABELS)) for t in simulator_tables), simulator_tables
    with psycopg.connect(sandbox_db) as conn:
        assert conn.execute("SELECT count(*) FROM salesforce_sandbox_changeevent WHERE status = 'pending'").fetchone()[0] > 0  # deals closed
        assert conn.execute("SELECT count(*) FROM sandbox_kit_idempotencyrecord").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM netsuite_sandbox_record WHERE record_type = 'nonInventorySaleItem'").fetchone()[0] > 0  # seeded
    with psycopg.connect(product_db) as conn:
        assert conn.execute("SELECT count(*) FROM auth_group").fetchone()[0] == 4  # roles, once, from the product's migrate


# --- static checks -------------------------------------------------------------------------
def python_files(*folders: str):
    for folder in folders:
        yield from (p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_the_product_imports_nothing_from_sandboxes():
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files("sync", "monitoring", "q2c_portal")
        for module in imported_modules(path)
        if module == "sandboxes" or module.startswith("sandboxes.")
    ]
    assert offenders == []


def test_simulator_code_runs_its_transactions_and_sql_on_the_simulators_database():
    """Under sandboxes.settings a bare transaction.atomic() or django.db.connection means the
    product's database, while the simulator models live on another (see sandboxes/db.py)."""
    offenders = []
    for path in python_files("sandboxes"):
        if path.name in {"db.py", "settings.py"}:
            continue
        tree = ast.parse(path.read_text(), str(path))
        named = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call) and any(k.arg == "using" for k in node.keywords)}
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and node.module in {"django.db", "django.db.transaction"}:
                offenders += [f"{where} imports {node.module}.{a.name}" for a in node.names if a.name in {"connection", "atomic"}]
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "transaction"
                and node.attr in {"atomic", "savepoint", "savepoint_commit", "savepoint_rollback", "on_commit", "get_connection"}
                and id(node) not in named
            ):
                offenders.append(f"{where} transaction.{node.attr} without using=DB")
    assert offenders == []
