"""API routes of the sync engine (events, webhooks, flows, exceptions, schemas)."""


urlpatterns: list = []
