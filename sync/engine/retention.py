"""Retention of the hub's own records."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from sync.models import ConnectorCall


def purge_connector_calls() -> int:
    """Connector call records older than CONNECTOR_CALL_RETENTION_DAYS (they feed the connectors
    page, which looks back a week at most). In batches, so no long lock or transaction."""
    cutoff = timezone.now() - timedelta(days=settings.CONNECTOR_CALL_RETENTION_DAYS)
    table, deleted = ConnectorCall._meta.db_table, 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE at < %s LIMIT 10000)", [cutoff])
            deleted += cursor.rowcount
            if cursor.rowcount < 10000:
                return deleted
