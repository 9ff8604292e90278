"""CRM write-backs through the outbox: published later, refused ones land in the exception queue."""

import pytest

from sync.engine.outbox_publisher import outbox_publish
from sync.models import OutboxMessage, SyncException
from sync.outbox import outbox_add
from tests.factories import FlowStepFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def salesforce(sandbox_servers, point_connector):
    server = sandbox_servers("salesforce")
    server.faults()
    point_connector("salesforce", server)
    return server


def _order():
    from sandboxes.salesforce import simulate as sf

    return sf.close_won_deal(account_name="Outbox Test Co", lines=[{"sku": "PLAT-SEAT", "quantity": 3, "unit_price": "45.00"}])


def test_a_queued_write_back_is_published_to_the_crm(salesforce):
    from sync.connectors.registry import crm

    deal = _order()
    outbox_add(topic="crm.status", key="k-1", payload={"object_type": "Order", "external_id": deal["order_id"], "fields": {"Q2C_Status__c": "Activated"}})
    assert outbox_publish() == 1
    [row] = crm().query(f"SELECT Id, Q2C_Status__c FROM Order WHERE Id = '{deal['order_id']}'")
    assert row["Q2C_Status__c"] == "Activated"
    assert OutboxMessage.objects.get(key="k-1").published_at is not None


def test_a_write_back_the_crm_refuses_for_good_opens_an_exception_and_a_retry_sends_it_again(salesforce):
    deal = _order()
    step = FlowStepFactory(
        name="crm_status", system="hub", status="succeeded", idempotency_key="q2c-order_activation:X:crm_status", flow_run__status="completed"
    )
    salesforce.faults(fail_records=["Outbox Test Co"])
    payload = {"object_type": "Order", "external_id": deal["order_id"], "fields": {"Q2C_Status__c": "Activated"}}
    outbox_add(topic="crm.status", key=step.idempotency_key, payload=payload)
    assert outbox_publish() == 0
    message = OutboxMessage.objects.get(key=step.idempotency_key)
    assert message.failed_at is not None and message.published_at is None
    exc = SyncException.objects.get(step=step)
    assert exc.error_class == "validation" and "Status write-back refused" in exc.message and exc.system == "salesforce"
    assert outbox_publish() == 0  # not retried forever in the background

    salesforce.faults()  # someone fixed the validation rule in Salesforce
    outbox_add(topic="crm.status", key=step.idempotency_key, payload=payload)  # what re-running the step does
    assert outbox_publish() == 1
    assert OutboxMessage.objects.get(pk=message.pk).published_at is not None
