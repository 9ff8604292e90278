"""Exceptions group like Sentry issues: a recurring failure is one row; one cause spans documents."""

import pytest

from sync.engine.exceptions import open_exception, resolve_for_step
from sync.models import SyncException
from tests.factories import FlowStepFactory

pytestmark = pytest.mark.django_db


def test_the_same_failure_recurring_on_a_step_is_one_row_with_a_count():
    step = FlowStepFactory()
    first = open_exception(system="netsuite", error_class="unavailable", message="NetSuite is down (503)", flow_run=step.flow_run, step=step)
    again = open_exception(system="netsuite", error_class="unavailable", message="NetSuite is down (503)", flow_run=step.flow_run, step=step)
    assert first.pk == again.pk and again.occurrences == 2
    assert SyncException.objects.count() == 1


def test_one_cause_on_many_documents_shares_a_cause_key_but_not_a_row():
    a = FlowStepFactory(flow_run__document_number="INV-20984")
    b = FlowStepFactory(flow_run__document_number="INV-20991")
    ea = open_exception(system="netsuite", error_class="validation", message="Credit exceeds the balance of INV-20984", flow_run=a.flow_run, step=a)
    eb = open_exception(system="netsuite", error_class="validation", message="Credit exceeds the balance of INV-20991", flow_run=b.flow_run, step=b)
    assert ea.pk != eb.pk
    assert ea.cause_key == eb.cause_key


def test_different_causes_do_not_group():
    a, b = FlowStepFactory(), FlowStepFactory()
    ea = open_exception(system="netsuite", error_class="mapping", message="No NetSuite item for SKU SKU-42", flow_run=a.flow_run, step=a)
    eb = open_exception(system="netsuite", error_class="mapping", message="No NetSuite item for SKU SKU-43", flow_run=b.flow_run, step=b)
    assert ea.cause_key != eb.cause_key


def test_an_exception_carries_business_context_and_resolves_itself_when_its_step_succeeds():
    step = FlowStepFactory(flow_run__document_number="ORD-7", flow_run__account_name="Globex", flow_run__amount="1200.00", flow_run__amount_reporting="1200.00")
    exc = open_exception(system="netsuite", error_class="timeout", message="Read timed out", flow_run=step.flow_run, step=step)
    assert (exc.document_number, exc.account_name, str(exc.revenue_at_risk)) == ("ORD-7", "Globex", "1200.00")
    step.flow_run.refresh_from_db()
    assert step.flow_run.had_exception
    assert resolve_for_step(step) == 1
    exc.refresh_from_db()
    assert exc.status == "resolved" and exc.resolved_at is not None
