"""Connector call records are kept CONNECTOR_CALL_RETENTION_DAYS, then purged in batches."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sync.models import ConnectorCall
from sync.tasks import purge_connector_calls

pytestmark = pytest.mark.django_db


def test_calls_older_than_the_retention_are_purged_and_recent_ones_kept(settings):
    settings.CONNECTOR_CALL_RETENTION_DAYS = 35
    now = timezone.now()
    old = ConnectorCall.objects.bulk_create(ConnectorCall(system="stripe", operation="customers.create", status_code=200) for _ in range(12_000))
    ConnectorCall.objects.filter(pk__in=[c.pk for c in old]).update(at=now - timedelta(days=36))
    kept = ConnectorCall.objects.create(system="netsuite", operation="invoice.upsert", status_code=200)
    ConnectorCall.objects.filter(pk=kept.pk).update(at=now - timedelta(days=34))
    assert purge_connector_calls() == 12_000  # two batches
    assert list(ConnectorCall.objects.values_list("pk", flat=True)) == [kept.pk]
