"""API routes of the sync engine (events, webhooks, flows, schemas, replay)."""

from django.urls import path

from . import api
from .reconciliation import api as recon

urlpatterns = [
    path("events/", api.events, name="api-events"),
    path("events/batch/", api.events_batch, name="api-events-batch"),
    path("webhooks/stripe/", api.stripe_webhook, name="webhook-stripe"),
    path("webhooks/salesforce/", api.salesforce_webhook, name="webhook-salesforce"),
    path("flows/", api.flows, name="api-flows"),
    path("flows/<int:pk>/", api.flow_detail, name="api-flow-detail"),
    path("schemas/", api.schemas, name="api-schemas"),
    path("schemas/<str:name>/", api.schema_detail, name="api-schema-detail"),
    path("inbox/<int:pk>/replay/", api.inbox_replay_view, name="api-inbox-replay"),
    path("reconciliation/runs/", recon.runs, name="api-recon-runs"),
    path("reconciliation/runs/<int:pk>/", recon.run_detail, name="api-recon-run"),
    path("reconciliation/runs/<int:pk>/breaks/", recon.run_breaks, name="api-recon-breaks"),
    path("reconciliation/rules/", recon.rules, name="api-recon-rules"),
    path("reconciliation/rules/dry-run/", recon.rules_dry_run, name="api-recon-dry-run"),
]
