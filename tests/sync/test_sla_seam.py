"""The runner takes its SLA due-date function from one setting, SYNC_SLA_DUE_AT (a dotted path)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from sync.engine import runner
from sync.flows.registry import flow_for
from sync.models import FlowType

pytestmark = pytest.mark.django_db
OCCURRED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def due_in_an_hour(flow_type, started_at):
    return started_at + timedelta(hours=1) if flow_type == FlowType.CUSTOMER_SYNC else None


@pytest.fixture
def sla_setting(settings):
    def use(path):
        settings.SYNC_SLA_DUE_AT = path
        runner._sla_due_at.cache_clear()

    yield use
    runner._sla_due_at.cache_clear()


def _start(account_id: str):
    envelope = {
        "id": f"evt-{account_id}",
        "type": "customer.upserted.v1",
        "source": "crm-relay",
        "occurred_at": OCCURRED.isoformat(),
        "data": {"account": {"external_id": account_id, "name": f"Account {account_id}"}, "currency": "USD"},
    }
    run, created = runner.flow_start(flow=flow_for(FlowType.CUSTOMER_SYNC), envelope=envelope)
    assert created
    return run


def test_the_function_the_setting_names_sets_the_due_date(sla_setting):
    sla_setting("tests.sync.test_sla_seam.due_in_an_hour")
    assert _start("001SLA1").sla_due_at == OCCURRED + timedelta(hours=1)


def test_an_empty_setting_means_no_sla(sla_setting):
    sla_setting("")
    assert _start("001SLA2").sla_due_at is None


def test_by_default_monitoring_calculates_it():
    due_at = runner._sla_due_at()
    assert due_at is import_string(django_settings.SYNC_SLA_DUE_AT)
    assert due_at.__module__.startswith("monitoring.")  # calendars, month-end targets
