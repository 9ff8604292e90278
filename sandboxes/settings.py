"""Settings for the vendor simulators: the product's settings plus the simulator apps.

Used by the sandbox servers (`manage.py run_sandbox <system> --settings sandboxes.settings`)
and the demo traffic; the test settings build on these. The product itself never loads
this module: `q2c_portal.settings` lists none of these apps.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import dj_database_url

from q2c_portal.settings import *  # noqa: F403
from q2c_portal.settings import DATABASE_URL, DATABASES, INSTALLED_APPS, ROOT_URLCONF

# App labels are the ones these apps always had (sandbox_kit, salesforce_sandbox, …), so their
# migration history and table names did not change when they left sync/connectors/.
SANDBOX_APPS = [
    "sandboxes.kit",
    "sandboxes.salesforce",
    "sandboxes.netsuite",
    "sandboxes.stripe",
    "sandboxes.business_central",
]
INSTALLED_APPS = [*INSTALLED_APPS, *SANDBOX_APPS]

# A sandbox server runs with the vendor's paths at the root: run_sandbox sets this to
# sandboxes.<system>.urls before it execs gunicorn on sandboxes.wsgi.
ROOT_URLCONF = os.environ.get("SANDBOX_URLCONF", ROOT_URLCONF)
WSGI_APPLICATION = "sandboxes.wsgi.application"


def sandbox_database_url(product_url: str) -> str:
    """The simulators' database by default: on the product's server, named `<product db>_sandboxes`."""
    parts = urlsplit(product_url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_sandboxes"))


# Their own database: the product's holds none of their tables (sandboxes/db.py routes them).
# bin/run-demo creates it and runs `migrate --database sandboxes` with these settings.
SANDBOX_DATABASE = "sandboxes"
SANDBOX_DATABASE_URL = os.environ.get("SANDBOX_DATABASE_URL") or sandbox_database_url(DATABASE_URL)
DATABASES = {
    **DATABASES,
    SANDBOX_DATABASE: dj_database_url.parse(SANDBOX_DATABASE_URL, conn_max_age=60, conn_health_checks=True),
}
DATABASES[SANDBOX_DATABASE].setdefault("OPTIONS", {})["connect_timeout"] = 5
DATABASE_ROUTERS = ["sandboxes.db.SandboxRouter"]
