"""factory_boy factories for the canonical and engine models."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from sync.models import FlowRun, FlowStep, FlowType, LegalEntity, SyncException


class LegalEntityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LegalEntity
        django_get_or_create = ("code",)

    code = "US01"
    name = "Acme Inc."
    base_currency = "USD"
    erp_subsidiary_id = "1"


class FlowRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FlowRun

    flow_type = FlowType.ORDER_ACTIVATION
    status = FlowRun.Status.COMPLETED
    idempotency_key = factory.Sequence(lambda n: f"flow-{n}")
    document_number = factory.Sequence(lambda n: f"ORD-{1000 + n}")
    account_name = "Globex Corporation"
    legal_entity = "US01"
    amount = Decimal("12000.00")
    currency = "USD"
    amount_reporting = factory.LazyAttribute(lambda o: o.amount)
    business_started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))


class FlowStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FlowStep

    flow_run = factory.SubFactory(FlowRunFactory)
    seq = 1
    name = "erp_sales_order"
    system = "netsuite"
    status = FlowStep.Status.FAILED
    idempotency_key = factory.LazyAttribute(lambda o: f"{o.flow_run.idempotency_key}:{o.name}")


class SyncExceptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncException

    step = factory.SubFactory(FlowStepFactory)
    flow_run = factory.LazyAttribute(lambda o: o.step.flow_run)
    flow_type = factory.LazyAttribute(lambda o: o.flow_run.flow_type)
    step_name = factory.LazyAttribute(lambda o: o.step.name)
    system = "netsuite"
    error_class = "validation"
    message = "Invalid Field Value SKU-42 for item.items[0].item"
    fingerprint = factory.Sequence(lambda n: hashlib.sha256(f"fp{n}".encode()).hexdigest()[:40])
    cause_key = "cause-sku-42"
    account_name = factory.LazyAttribute(lambda o: o.flow_run.account_name)
    document_number = factory.LazyAttribute(lambda o: o.flow_run.document_number)
    amount = Decimal("12000.00")
    currency = "USD"
    revenue_at_risk = Decimal("12000.00")
    first_seen = factory.LazyFunction(timezone.now)
    last_seen = factory.LazyFunction(timezone.now)
    correlation_id = factory.LazyAttribute(lambda o: o.flow_run.correlation_id)


# --- exception queue (appended) -----------------------------------------------------------
class InboxEventFactory(factory.django.DjangoModelFactory):
    """An accepted inbound event; `status="dead"` makes it a dead letter the queue can replay."""

    class Meta:
        model = "sync.InboxEvent"

    source = "salesforce"
    source_event_id = factory.Sequence(lambda n: f"evt-{n:06d}")
    event_type = "salesforce.order.closed_won"
    occurred_at = factory.LazyFunction(timezone.now)
    envelope = factory.LazyAttribute(lambda o: {"id": o.source_event_id, "type": "order.closed_won", "data": {"order_number": "ORD-1"}})
    status = "dead"
    error = "The salesforce event lacks 'AccountId' needed to map it."
