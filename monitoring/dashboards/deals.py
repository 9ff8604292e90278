"""One deal's story (the deal page and the lifecycle line on every trace): every flow that carries
its deal id (sync/flows/deals.py), in time order; the lifecycle line closed-won → ERP order →
subscription → first invoice → payment, then what happened since (amendments, renewals, a
cancellation), each stage computed from what actually happened; its money (monitoring.kpis.money.
deal_money); and where it is now. A handful of indexed reads, whatever the deal's size."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from monitoring.kpis import money as money_kpis
from sync.models import FlowRun, FlowStep, FlowType, Invoice, Order, Payment, Subscription, SyncException

LIFECYCLE_STAGES = [
    ("closed_won", "Closed won", "CRM"),
    ("erp_order", "ERP sales order", "ERP"),
    ("subscription", "Subscription", "Billing"),
    ("first_invoice", "First invoice", "Billing → ERP"),
    ("payment", "Payment", "Billing → ERP"),
]
# what happens to a live deal after it is paid: each such flow is a stage of its own
LATER_FLOWS = {FlowType.AMENDMENT: "Amendment", FlowType.RENEWAL: "Renewal", FlowType.CANCELLATION: "Cancellation"}
DONE_STATES = ("done", "skipped")
MAX_FLOWS = 500


def deal_flows(deal_id: str) -> list[FlowRun]:
    """Every flow of the deal in business time order, each with its count of open exceptions."""
    return list(
        FlowRun.objects.filter(deal_id=deal_id)
        .annotate(open_exceptions=Count("exceptions", filter=Q(exceptions__status__in=SyncException.OPEN_STATUSES)))
        .order_by("business_started_at", "created_at", "id")[:MAX_FLOWS]
    )


def deal_exceptions(deal_id: str):
    # a flow's exceptions, and the reconciliation breaks found on the deal's documents (no flow: the deal id is in the payload)
    return (
        SyncException.objects.filter(Q(flow_run__deal_id=deal_id) | Q(flow_run__isnull=True, payload__deal_id=deal_id), status__in=SyncException.OPEN_STATUSES)
        .select_related("flow_run")
        .order_by("-last_seen")
    )


def _stage(key: str, label: str, system: str, at: datetime | None, run: FlowRun | None, *, state: str, note: str = "") -> dict:
    return {"key": key, "label": label, "system": system, "at": at, "run_id": run.pk if run else None, "state": state, "note": note, "spent_seconds": None}


def _run_state(run: FlowRun) -> str:
    if run.status == FlowRun.Status.COMPLETED:
        return "done"
    if run.status == FlowRun.Status.FAILED:
        return "failed"
    if run.status == FlowRun.Status.CANCELLED:
        return "cancelled"
    return "now"


def deal_lifecycle(deal_id: str, flows: list[FlowRun] | None = None) -> dict | None:
    """The deal's lifecycle line from what happened: closed-won (the order), ERP sales order and
    subscription (the order flow's steps), first invoice (done once posted to the ERP), payment
    (done once the first invoice is paid in full; a partial payment shows what remains), then one
    stage per amendment, renewal and cancellation. `current` is the first stage not done; a deal
    whose cancellation completed is at "Cancelled"."""
    if not deal_id:
        return None
    flows = deal_flows(deal_id) if flows is None else flows
    order = Order.objects.filter(number=deal_id).first()
    order_runs = [f for f in flows if f.flow_type == FlowType.ORDER_ACTIVATION]
    order_run = order_runs[-1] if order_runs else None
    if order is None and order_run is None:
        return None
    steps = {s.name: s for s in order_run.steps.all()} if order_run else {}
    now = timezone.now()

    def step(name: str) -> tuple[datetime | None, str]:
        s = steps.get(name)
        if s is None:
            return None, "pending"
        if s.status == FlowStep.Status.SUCCEEDED:
            return s.finished_at or s.started_at, "done"
        if s.status in (FlowStep.Status.FAILED, FlowStep.Status.RETRY):
            return None, "failed"
        if s.status == FlowStep.Status.COMPENSATED:
            return None, "cancelled"
        return None, "pending"

    closed_won_at = (order.closed_won_at if order else None) or (order_run.closed_won_at or order_run.business_started_at if order_run else None)
    stages = [_stage("closed_won", "Closed won", "CRM", closed_won_at, order_run, state="done" if closed_won_at else "pending", note=deal_id)]
    at, state = step("erp_sales_order")
    stages.append(_stage("erp_order", "ERP sales order", "ERP", at, order_run, state=state))

    subscription = Subscription.objects.filter(order__number=deal_id).order_by("created_at").first()
    sub_at, sub_state = step("billing_subscription")
    one_time_only = sub_state == "done" and subscription is None and "skipped" in (order_run.context.get("steps", {}).get("billing_subscription") or {})
    if subscription is not None and sub_state != "done":
        sub_at, sub_state = subscription.billing_starts_at or subscription.created_at, "done"
    note = "none: one-time charges only" if one_time_only else (subscription.get_status_display() if subscription else "")
    stages.append(_stage("subscription", "Subscription", "Billing", sub_at, order_run, state=sub_state, note=note))

    invoice = money_kpis.deal_invoices(deal_id).filter(finalized_at__isnull=False).order_by(Coalesce("finalized_at", "created_at"), "created_at").first()
    invoice_run = next((f for f in reversed(flows) if f.flow_type == FlowType.INVOICE_POSTING and invoice and f.document_number == invoice.number), None)
    if one_time_only and invoice is None:
        stages.append(_stage("first_invoice", "First invoice", "Billing → ERP", None, None, state="skipped", note="not invoiced through billing"))
        stages.append(_stage("payment", "Payment", "Billing → ERP", None, None, state="skipped"))
    else:
        stages.append(_first_invoice(invoice, invoice_run))
        stages.append(_payment(invoice, flows))

    for run in flows:  # what happened since, in time order
        label = LATER_FLOWS.get(run.flow_type)
        if label is None:
            continue
        state = _run_state(run)
        note = run.document_number if run.flow_type != FlowType.CANCELLATION else (run.context.get("event", {}).get("data", {}).get("reason") or "")
        if run.flow_type == FlowType.AMENDMENT and run.amount:
            note = f"{run.document_number} · ARR {'+' if run.amount > 0 else '−'}{abs(run.amount):,.2f} {run.currency}"
        at = run.business_completed_at if state == "done" else None
        stages.append(_stage(run.flow_type, label, "CRM → Billing → ERP", at, run, state=state, note=str(note)[:80]))

    # time spent reaching each base stage, and where the deal is now
    previous, current = None, None
    for stage in stages[: len(LIFECYCLE_STAGES)]:
        if current is None and stage["state"] in DONE_STATES:
            if stage["at"] is not None:
                if previous is not None:
                    stage["spent_seconds"] = max((stage["at"] - previous).total_seconds(), 0)
                previous = stage["at"]
        elif current is None:
            current = stage["key"]
            if stage["state"] == "pending":
                stage["state"] = "now"
            if previous is not None:
                stage["spent_seconds"] = max((now - previous).total_seconds(), 0)
    if current is None:
        current = next((s["key"] for s in stages[len(LIFECYCLE_STAGES) :] if s["state"] in ("now", "failed")), None)
    cancelled = next((s for s in stages if s["key"] == FlowType.CANCELLATION and s["state"] == "done"), None)
    current_stage = next((s for s in stages if s["key"] == current), None)
    if cancelled is not None:  # the deal has ended, whatever it still owes (the payment stage says so)
        stage_label = "Cancelled"
    elif current_stage is not None:
        stage_label = f"{current_stage['label']} — {'failing' if current_stage['state'] == 'failed' else 'waiting'}"
    else:
        stage_label = "Live and paid" if not one_time_only else "Delivered (one-time charges)"
    end = (cancelled["at"] if cancelled else previous) if current is None else now
    return {
        "deal_id": deal_id,
        "order_number": deal_id,
        "stages": stages,
        "current": current,
        "stage_label": stage_label,
        "cancelled": cancelled is not None,
        "total_seconds": (end - closed_won_at).total_seconds() if closed_won_at and end else None,
        "complete": current is None,
    }


def _first_invoice(invoice: Invoice | None, run: FlowRun | None) -> dict:
    if invoice is None:
        return _stage("first_invoice", "First invoice", "Billing → ERP", None, None, state="pending", note="not invoiced yet")
    if invoice.posted_at is not None or (run is not None and run.status == FlowRun.Status.COMPLETED):
        return _stage(
            "first_invoice",
            "First invoice",
            "Billing → ERP",
            invoice.posted_at or run.business_completed_at,
            run,
            state="done",
            note=f"{invoice.number} · posted",
        )
    state = "failed" if run is not None and run.status == FlowRun.Status.FAILED else "pending"
    return _stage("first_invoice", "First invoice", "Billing → ERP", None, run, state=state, note=f"{invoice.number} · finalized, not posted")


def _payment(invoice: Invoice | None, flows: list[FlowRun]) -> dict:
    if invoice is None:
        return _stage("payment", "Payment", "Billing → ERP", None, None, state="pending")
    runs = [
        f
        for f in flows
        if f.flow_type == FlowType.PAYMENT_STATUS and (f.context.get("event", {}).get("data", {}) or {}).get("invoice_number") == invoice.number
    ]
    run = runs[-1] if runs else None
    if invoice.status in (Invoice.Status.PAID, Invoice.Status.OVERPAID):
        note = f"{invoice.number} · {invoice.get_status_display()}"
        if invoice.status == Invoice.Status.OVERPAID:
            note += f" · credit {invoice.credit_balance:,.2f} {invoice.currency}"
        return _stage("payment", "Payment", "Billing → ERP", invoice.paid_at, run, state="done", note=note)
    failed = Payment.objects.filter(invoice=invoice, status=Payment.Status.FAILED).order_by("-occurred_at").first()
    if invoice.status == Invoice.Status.PARTIALLY_PAID:
        return _stage(
            "payment",
            "Payment",
            "Billing → ERP",
            None,
            run,
            state="pending",
            note=f"partially paid · {invoice.amount_remaining:,.2f} {invoice.currency} remaining",
        )
    if run is not None and run.status == FlowRun.Status.FAILED:
        return _stage("payment", "Payment", "Billing → ERP", None, run, state="failed", note="payment not applied")
    if failed is not None:
        return _stage("payment", "Payment", "Billing → ERP", None, run, state="failed", note=failed.failure_reason or "payment failed")
    return _stage("payment", "Payment", "Billing → ERP", None, run, state="pending")


def deal_story(deal_id: str) -> dict | None:
    flows = deal_flows(deal_id)
    order = Order.objects.filter(number=deal_id).select_related("customer", "legal_entity").first()
    if not flows and order is None:
        return None
    first = next((f for f in flows if f.account_name), None)
    return {
        "deal_id": deal_id,
        "order": order,
        "account_name": order.customer.name if order else (first.account_name if first else ""),
        "legal_entity": (order.legal_entity.code if order and order.legal_entity else "") or (first.legal_entity if first else ""),
        "flows": flows,
        "lifecycle": deal_lifecycle(deal_id, flows),
        "money": money_kpis.deal_money(deal_id),
        "exceptions": list(deal_exceptions(deal_id)[:50]),
        "invoices": list(money_kpis.deal_invoices(deal_id).filter(finalized_at__isnull=False).order_by("finalized_at", "number")[:100]),
    }
