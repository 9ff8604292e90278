"""API routes of the sync engine (events, webhooks, flows, exceptions, schemas)."""

from django.urls import path

urlpatterns: list = []
