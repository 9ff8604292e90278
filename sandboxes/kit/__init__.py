"""Shared parts of the local sandboxes: fault injection, idempotency records, the server runner.

Each sandbox (sync/connectors/<system>/sandbox/) is a set of Django views on the real
system's paths, with its own URLconf, run as its own server:

    python manage.py run_sandbox stripe --port 8103

Its state lives in PostgreSQL (its own tables). Faults are set per system through
`/__sandbox__/faults` (JSON API) or the Django admin ("Sandbox faults").
"""
