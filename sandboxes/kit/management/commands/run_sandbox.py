"""Run one sandbox as its own server: `manage.py run_sandbox stripe --port 8103 --settings sandboxes.settings`."""

from __future__ import annotations

import os
import shutil
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

SANDBOX_URLCONFS = {
    "salesforce": "sandboxes.salesforce.urls",
    "netsuite": "sandboxes.netsuite.urls",
    "stripe": "sandboxes.stripe.urls",
    "business_central": "sandboxes.business_central.urls",
}
DEFAULT_PORTS = {"salesforce": 8101, "netsuite": 8102, "stripe": 8103, "business_central": 8104}


class Command(BaseCommand):
    help = "Serve a connector's local sandbox (the vendor's API paths at the root) on its own port."

    def add_arguments(self, parser):
        parser.add_argument("system", choices=sorted(SANDBOX_URLCONFS))
        parser.add_argument("--port", type=int)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--workers", type=int, default=2)

    def handle(self, *args, system: str, port: int | None, host: str, workers: int, **options):
        gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
        if not os.path.exists(gunicorn):
            raise CommandError("gunicorn is not installed in this environment")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,  # the server runs on this command's settings
            "SANDBOX_URLCONF": SANDBOX_URLCONFS[system],  # read by sandboxes.settings
            "SECURE_SSL_REDIRECT": "0",  # sandboxes speak plain HTTP on localhost
        }
        port = port or DEFAULT_PORTS[system]
        argv = [
            gunicorn,
            "sandboxes.wsgi:application",
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--threads",
            "4",
            "--access-logfile",
            "-",
            # keep idle connections longer than any Retry-After a client waits out, as real
            # API front ends do; gunicorn's 2 s default resets a client's pooled connection
            "--keep-alive",
            "75",
            "--name",
            f"sandbox-{system}",
        ]
        self.stdout.write(f"{system} sandbox on http://{host}:{port}/ (faults: /__sandbox__/)")
        self.stdout.flush()
        os.execve(gunicorn, argv, env)
