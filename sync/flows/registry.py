"""All flows, and which canonical event starts which."""

from __future__ import annotations

from functools import cache

from sync.models import CustomerMatch, FlowRun

from . import amendment, cancellation, credit_memo, customer_sync, invoice_posting, order_activation, payment_status, renewal, usage_close
from .base import Flow

FLOWS: list[Flow] = [
    m.FLOW for m in (customer_sync, order_activation, amendment, renewal, cancellation, invoice_posting, payment_status, usage_close, credit_memo)
]


@cache
def _by_type() -> dict[str, Flow]:
    return {f.flow_type: f for f in FLOWS}


@cache
def _by_event() -> dict[str, Flow]:
    return {event_type: f for f in FLOWS for event_type in f.event_types}


def flow_for(flow_type: str) -> Flow:
    return _by_type()[flow_type]


def flow_for_event(event_type: str) -> Flow | None:
    return _by_event().get(event_type)


def provided(key: str) -> bool:
    """Has the prerequisite `key` ("order:ORD-1", "invoice:INV-9") completed?"""
    kind, _, number = key.partition(":")
    if kind == "customer-match":  # a person decided the customer match the flow waited on
        return number.isdigit() and CustomerMatch.objects.filter(pk=int(number)).exclude(decision="").exists()
    flow_type = {"order": "order_activation", "invoice": "invoice_posting"}.get(kind)
    if flow_type is None:
        return False
    return FlowRun.objects.filter(flow_type=flow_type, document_number=number, status=FlowRun.Status.COMPLETED).exists()


@cache
def writeback_steps() -> tuple[str, ...]:
    """Names of the steps that only write status back to the CRM (Step.writeback)."""
    return tuple(sorted({s.name for f in FLOWS for s in f.steps if s.writeback}))
