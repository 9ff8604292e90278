"""Where the simulators' data lives: their own database, away from the product's.

Under `sandboxes.settings` the simulator apps' models are routed to the `sandboxes` alias
(SANDBOX_DATABASE), and only there do their migrations create tables; every other app stays
on `default`, the product's database. The test settings keep one database and no router, and
set SANDBOX_DATABASE to `default`.

Querysets follow the router by themselves, but `transaction.atomic()`, savepoints and
`django.db.connection` mean the default alias unless told otherwise. So simulator code opens
its transactions with `using=DB` and runs raw SQL on `connection` from this module — else a
`select_for_update()` on a simulator model would run outside any transaction of its own
database. tests/sandboxes/test_separation.py checks that none is left bare.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.connection import ConnectionProxy

SANDBOX_APP_LABELS = frozenset({"sandbox_kit", "salesforce_sandbox", "netsuite_sandbox", "stripe_sandbox", "business_central_sandbox"})

DB: str = getattr(settings, "SANDBOX_DATABASE", DEFAULT_DB_ALIAS)
connection = ConnectionProxy(connections, DB)  # like django.db.connection, on the simulators' alias


class SandboxRouter:
    """Simulator models read, write and migrate on SANDBOX_DATABASE; nothing else does."""

    def db_for_read(self, model, **hints):
        return DB if model._meta.app_label in SANDBOX_APP_LABELS else None

    db_for_write = db_for_read

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return (app_label in SANDBOX_APP_LABELS) == (db == DB)
