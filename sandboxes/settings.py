"""Settings for the vendor simulators: the product's settings plus the simulator apps.

Used by the sandbox servers (`manage.py run_sandbox <system> --settings sandboxes.settings`)
and the demo traffic; the test settings build on these. The product itself never loads
this module: `q2c_portal.settings` lists none of these apps.
"""

from __future__ import annotations

import os

from q2c_portal.settings import *  # noqa: F403
from q2c_portal.settings import INSTALLED_APPS, ROOT_URLCONF

# App labels are the ones these apps always had (sandbox_kit, salesforce_sandbox, …), so their
# migration history and table names did not change when they left sync/connectors/.
SANDBOX_APPS = [
    "sandboxes.kit",
    "sandboxes.salesforce",
    "sandboxes.netsuite",
    "sandboxes.stripe",
]
INSTALLED_APPS = [*INSTALLED_APPS, *SANDBOX_APPS]

# A sandbox server runs with the vendor's paths at the root: run_sandbox sets this to
# sandboxes.<system>.urls before it execs gunicorn on sandboxes.wsgi.
ROOT_URLCONF = os.environ.get("SANDBOX_URLCONF", ROOT_URLCONF)
WSGI_APPLICATION = "sandboxes.wsgi.application"
