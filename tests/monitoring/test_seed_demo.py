"""seed_kpi_demo writes rows the engine could have produced (issue 11: seeded exceptions carried
empty payloads and steps that finished before they started; invoices were not linked)."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command

from sync.canonical.events import validate_envelope
from sync.flows.registry import flow_for_event
from sync.models import FlowRun, FlowStep, FlowType, Invoice, Payment, SyncException

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(db):
    call_command("seed_kpi_demo", days=6, scale=0.5, seed=3, stdout=open(os.devnull, "w"))


def test_every_seeded_run_carries_the_canonical_event_that_would_have_started_it(seeded):
    runs = list(FlowRun.objects.all())
    assert len(runs) > 100
    for run in runs:
        event = run.context.get("event")
        assert event and event.get("data"), run.document_number
        assert validate_envelope(event) == [], (run.flow_type, validate_envelope(event))
        assert flow_for_event(event["type"]).flow_type == run.flow_type


def test_every_seeded_exception_has_the_payload_of_its_step(seeded):
    exceptions = SyncException.objects.filter(flow_run__isnull=False)
    assert exceptions.exists()
    for exc in exceptions:
        assert exc.payload, exc.pk
        assert exc.payload.get("data") == exc.flow_run.context["event"]["data"]


def test_seeded_steps_start_before_they_finish_and_after_the_step_before(seeded):
    previous = {}
    bad = []
    for step in FlowStep.objects.order_by("flow_run_id", "seq"):
        if step.started_at and step.finished_at and step.finished_at < step.started_at:
            bad.append((step.flow_run_id, step.name, "finished before it started"))
        before = previous.get(step.flow_run_id)
        if before is not None and before.finished_at and step.started_at and step.started_at < before.finished_at:
            bad.append((step.flow_run_id, step.name, f"started before {before.name} finished"))
        if step.status in (FlowStep.Status.SUCCEEDED, FlowStep.Status.FAILED) and not (step.started_at and step.finished_at):
            bad.append((step.flow_run_id, step.name, "settled without both times"))
        previous[step.flow_run_id] = step
    assert bad == []


def test_seeded_documents_link_up_as_a_deal(seeded):
    orders = set(FlowRun.objects.filter(flow_type=FlowType.ORDER_ACTIVATION).values_list("document_number", flat=True))
    linked = FlowRun.objects.exclude(flow_type=FlowType.CUSTOMER_SYNC)
    assert not linked.filter(deal_id="").exists()
    assert set(linked.values_list("deal_id", flat=True)) <= orders  # every deal id is a real order
    invoices = list(Invoice.objects.select_related("subscription__order"))
    assert invoices
    for invoice in invoices:
        assert invoice.subscription is not None  # linked to the subscription it bills
        order = invoice.subscription.order
        assert order.activated_at and invoice.finalized_at > order.activated_at  # after the order was activated
        run = FlowRun.objects.get(flow_type=FlowType.INVOICE_POSTING, document_number=invoice.number)
        assert run.deal_id == order.number and run.amount == invoice.total
    for payment in Payment.objects.select_related("invoice"):
        assert payment.invoice.posted_at and payment.occurred_at > payment.invoice.posted_at  # paid after it was posted
    # the invoices' payment state follows from their payments (docs/MONEY.md)
    for invoice in Invoice.objects.filter(payments__status="received").distinct():
        assert invoice.status in ("paid", "overpaid", "partially_paid") and invoice.amount_paid > 0


def test_a_seeded_order_s_lines_are_worth_exactly_its_amount(seeded):
    """The deal page shows the lines' first-year value beside the flow's amount (and the revenue
    at risk computed from it): a seeded order whose lines round to a different total would show two
    values for one deal."""
    from sync.canonical.charges import first_year_value

    runs = FlowRun.objects.filter(flow_type=FlowType.ORDER_ACTIVATION)
    assert runs.count() > 10
    off = [(r.document_number, r.amount, first_year_value(r.context["event"]["data"]["lines"])) for r in runs]
    assert [o for o in off if o[1] != o[2]] == []
