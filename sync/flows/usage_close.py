"""Usage close (own queue, apart from financial work): aggregate → billing usage → reconcile counts."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, Sum
from django.utils import timezone

from q2c_portal.celery import Queue
from sync.canonical.events import when
from sync.canonical.store import ref_external
from sync.connectors import registry
from sync.models import FlowRun, FlowType, Subscription, UsageRecord

from .base import Flow, Step, StepContext, StepValidationError
from .common import activated_order
from .deals import of_order


def aggregate(ctx: StepContext) -> dict:
    data = ctx.data
    order = activated_order(data["order_number"], waiting_for="usage close")
    subscription = Subscription.objects.filter(order=order).first()
    start, end = when(data["period_start"]), when(data["period_end"])
    if end <= start:
        raise StepValidationError("validation", "period_end must be after period_start.", "period_end")
    record, created = UsageRecord.objects.get_or_create(
        subscription=subscription,
        metric=data["metric"],
        period_start=start,
        period_end=end,
        defaults={"quantity": Decimal(data["quantity"]), "closed_at": timezone.now()},
    )
    if not created and record.quantity != Decimal(data["quantity"]):
        raise StepValidationError(
            "reconciliation", f"{data['metric']} for this period was already closed at {record.quantity}; the new close says {data['quantity']}.", "quantity"
        )
    totals = UsageRecord.objects.filter(subscription__order=order, metric=data["metric"], period_start=start, period_end=end).aggregate(
        q=Sum("quantity"), n=Count("id")
    )
    billing_customer = ref_external(system=registry.system_of("billing"), object_type="customer", canonical_type="customer", canonical_id=order.customer_id)
    if not billing_customer:
        raise StepValidationError("not_found", f"Order {order.number}'s customer has no billing account.", "order_number")
    return {"quantity": str(totals["q"] or 0), "records": totals["n"], "billing_customer_id": billing_customer}


def billing_usage(ctx: StepContext) -> dict:
    billing = registry.billing()
    agg = ctx.state["aggregate"]
    ctx.request(
        {
            "system": billing.system,
            "operation": "report usage",
            "metric": ctx.data["metric"],
            "quantity": agg["quantity"],
            "idempotency_key": ctx.idempotency_key,
        }
    )
    result = billing.report_usage(
        customer_id=agg["billing_customer_id"],
        metric=ctx.data["metric"],
        quantity=agg["quantity"],
        timestamp=when(ctx.data["period_end"]),
        idempotency_key=ctx.idempotency_key,
    )
    return {"usage_id": result.external_id, "reported": agg["quantity"]}


def reconcile(ctx: StepContext) -> dict:
    """What billing was told must equal what the source closed."""
    reported, source = Decimal(ctx.state["billing_usage"]["reported"]), Decimal(ctx.data["quantity"])
    if reported != source:
        raise StepValidationError("reconciliation", f"Billing received {reported} {ctx.data['metric']} but the source closed {source}.", "quantity")
    return {"reported": str(reported), "source_quantity": str(source)}


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = f"{data['order_number']}/{data['metric']}"
    run.business_started_at = when(data["period_end"]) or timezone.now()


FLOW = Flow(
    flow_type=FlowType.USAGE_CLOSE,
    event_types=("usage.closed.v1",),
    business_key=lambda data: f"{data['order_number']}:{data['metric']}:{data['period_start']}:{data['period_end']}",
    steps=[Step("aggregate", "hub", aggregate), Step("billing_usage", "billing", billing_usage), Step("reconcile", "hub", reconcile)],
    prepare=prepare,
    deal_of=of_order,
    queue=Queue.USAGE,
    description="Usage period closed → billing usage → reconcile counts",
)
