"""Detect what never arrived, not only what failed.

Three expectations, each checked set-based and in bounded batches:

- ``erp_sales_order``: a closed-won order (order-activation flow) past its SLA due time whose
  ERP sales-order step has not succeeded;
- ``invoice``: an active subscription whose billing period has ended (``current_period_end``
  passed) with no invoice for it;
- ``payment``: a finalized, still-open invoice past its due date with no payment status at all.

Each finding opens one exception through ``open_exception(error_class="missing",
fingerprint_extra=<kind:document>)`` with the revenue at risk, once (a finding already open is
not re-counted every sweep). When the expected thing arrives, the next run resolves it through
``resolve_by_fingerprint``. The stable message keeps one root-cause group per kind.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from sync.engine.exceptions import cause_key_for, fingerprint_for, open_exception, resolve_by_fingerprint
from sync.models import FlowRun, FlowStep, FlowType, Invoice, Payment, Subscription, SyncException

ERP_ORDER_STEP = "erp_sales_order"  # sync/flows/order_activation.py
BATCH = 500
INVOICE_GRACE = timedelta(hours=1)  # billing platforms finalize shortly after the period ends

MESSAGES = {
    "erp_sales_order": "Closed-won order has no ERP sales order past its SLA target",
    "invoice": "Active subscription has no invoice after its billing period ended",
    "payment": "Finalized invoice has no payment status past its due date",
}


def _system(role: str) -> str:
    return settings.CONNECTOR_ROLES[role]


def _fingerprint(kind: str, system: str, document: str, flow_run_id: int | None = None) -> str:
    cause = cause_key_for(system, "missing", MESSAGES[kind])
    return fingerprint_for(flow_run_id=flow_run_id, step_name="", error_class="missing", cause_key=cause, extra=f"missing:{kind}:{document}")


def _open_fingerprints(kind: str) -> set[str]:
    return set(
        SyncException.objects.filter(error_class="missing", status__in=SyncException.OPEN_STATUSES, payload__missing=kind).values_list("fingerprint", flat=True)
    )


def _open(
    kind: str,
    system: str,
    document: str,
    *,
    flow_run: FlowRun | None = None,
    amount: Decimal,
    currency: str,
    account_name: str = "",
    payload: dict,
    already_open: set[str],
) -> bool:
    fingerprint = _fingerprint(kind, system, document, flow_run.pk if flow_run else None)
    if fingerprint in already_open:
        return False
    open_exception(
        system=system,
        error_class="missing",
        message=MESSAGES[kind],
        flow_run=flow_run,
        document_number=document,
        account_name=account_name,
        amount=amount,
        currency=currency,
        payload={"missing": kind, "document": document, **payload},
        fingerprint_extra=f"missing:{kind}:{document}",
    )
    return True


# --- closed-won order → ERP sales order ------------------------------------------------------------
def detect_missing_erp_orders(now: datetime) -> tuple[int, int]:
    erp = _system("erp")
    done_step = FlowStep.objects.filter(flow_run=OuterRef("pk"), name=ERP_ORDER_STEP, status=FlowStep.Status.SUCCEEDED)
    late = (
        FlowRun.objects.filter(flow_type=FlowType.ORDER_ACTIVATION, finished_at__isnull=True, sla_due_at__lt=now)
        .exclude(status=FlowRun.Status.CANCELLED)
        .exclude(Exists(done_step))
        # a flow that already failed with its own exception is known, not missing: one row per problem
        .exclude(Exists(SyncException.objects.filter(flow_run=OuterRef("pk"), status__in=SyncException.OPEN_STATUSES).exclude(error_class="missing")))
        .order_by("sla_due_at")[:BATCH]
    )
    already = _open_fingerprints("erp_sales_order")
    opened = sum(
        _open(
            "erp_sales_order",
            erp,
            run.document_number or str(run.pk),
            flow_run=run,
            amount=run.amount,
            currency=run.currency,
            payload={"expected_by": run.sla_due_at.isoformat(), "closed_won_at": run.business_started_at.isoformat()},
            already_open=already,
        )
        for run in late
    )
    arrived = SyncException.objects.filter(error_class="missing", status__in=SyncException.OPEN_STATUSES, payload__missing="erp_sales_order").filter(
        Q(flow_run__isnull=True)
        | Q(flow_run__status__in=[FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED])
        | Q(Exists(FlowStep.objects.filter(flow_run=OuterRef("flow_run_id"), name=ERP_ORDER_STEP, status=FlowStep.Status.SUCCEEDED)))
    )
    resolved = sum(
        resolve_by_fingerprint(fp, note="The ERP sales order arrived (or the order was cancelled).")
        for fp in arrived.values_list("fingerprint", flat=True)[:BATCH]
    )
    return opened, resolved


# --- active subscription → invoice for its billing period --------------------------------------------
def _subscription_document(sub: Subscription) -> str:
    return f"SUB-{str(sub.pk)[:8]}@{sub.current_period_end:%Y-%m-%d}"


def detect_missing_invoices(now: datetime) -> tuple[int, int]:
    billing = _system("billing")
    has_invoice = Invoice.objects.filter(subscription=OuterRef("pk"))
    overdue = (
        Subscription.objects.filter(status=Subscription.Status.ACTIVE, current_period_end__lt=now - INVOICE_GRACE)
        .exclude(Exists(has_invoice))
        .select_related("customer", "order")
        .order_by("current_period_end")[:BATCH]
    )
    already = _open_fingerprints("invoice")
    opened = 0
    for sub in overdue:
        period_amount = (sub.arr / 12).quantize(Decimal("0.01"))  # one month's billing of the ARR
        opened += _open(
            "invoice",
            billing,
            _subscription_document(sub),
            amount=period_amount,
            currency=sub.currency,
            account_name=sub.customer.name,
            payload={"subscription_id": str(sub.pk), "period_end": sub.current_period_end.isoformat(), "order": sub.order.number if sub.order_id else ""},
            already_open=already,
        )
    resolved = 0
    for exc in SyncException.objects.filter(error_class="missing", status__in=SyncException.OPEN_STATUSES, payload__missing="invoice")[:BATCH]:
        sub_id = exc.payload.get("subscription_id")
        arrived = (
            Invoice.objects.filter(subscription_id=sub_id).exists() or not Subscription.objects.filter(pk=sub_id, status=Subscription.Status.ACTIVE).exists()
        )
        if arrived:
            resolved += resolve_by_fingerprint(exc.fingerprint, note="An invoice for the subscription arrived (or it is no longer active).")
    return opened, resolved


# --- finalized invoice → payment status --------------------------------------------------------------------
def detect_missing_payments(now: datetime) -> tuple[int, int]:
    billing = _system("billing")
    has_payment = Payment.objects.filter(invoice=OuterRef("pk"))
    today = timezone.localdate(now)
    overdue = (
        Invoice.objects.filter(finalized_at__isnull=False, status=Invoice.Status.OPEN, due_date__lt=today)
        .exclude(Exists(has_payment))
        .select_related("customer")
        .order_by("due_date")[:BATCH]
    )
    already = _open_fingerprints("payment")
    opened = sum(
        _open(
            "payment",
            billing,
            inv.number,
            amount=inv.total,
            currency=inv.currency,
            account_name=inv.customer.name,
            payload={"invoice_id": str(inv.pk), "due_date": inv.due_date.isoformat()},
            already_open=already,
        )
        for inv in overdue
    )
    resolved = 0
    for exc in SyncException.objects.filter(error_class="missing", status__in=SyncException.OPEN_STATUSES, payload__missing="payment")[:BATCH]:
        invoice = Invoice.objects.filter(number=exc.document_number).first()
        if invoice is None or invoice.status != Invoice.Status.OPEN or Payment.objects.filter(invoice=invoice).exists():
            resolved += resolve_by_fingerprint(exc.fingerprint, note="A payment status arrived for the invoice (or it was paid, voided or written off).")
    return opened, resolved


def detect_missing_events(*, now: datetime | None = None) -> dict:
    """Run the three checks; returns {kind: {"opened": n, "resolved": n}}."""
    now = now or timezone.now()
    result = {}
    for kind, check in (("erp_sales_order", detect_missing_erp_orders), ("invoice", detect_missing_invoices), ("payment", detect_missing_payments)):
        opened, resolved = check(now)
        result[kind] = {"opened": opened, "resolved": resolved}
    return result
