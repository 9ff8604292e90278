"""Shared parts of the local sandboxes: fault injection, idempotency records, the server runner.

Each sandbox (sandboxes/<system>/) is a set of Django views on the real system's paths,
with its own URLconf, run as its own server on the sandbox settings:

    python manage.py run_sandbox stripe --port 8103 --settings sandboxes.settings

Its state lives in PostgreSQL, in the sandboxes' own database (sandboxes/db.py). Faults are
set per system on its `/__sandbox__/` page or through `/__sandbox__/faults` (JSON API), or in
the Django admin ("Sandbox faults") of a site running on the sandbox settings.
"""
