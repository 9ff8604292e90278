"""Seed realistic history for the KPI dashboards (demo, screenshots, browser tests).

    python manage.py seed_kpi_demo --days 30 --scale 1

Writes flow runs with their steps and business timestamps, exceptions (through
`open_exception`, then dated back), connector calls, the canonical order → subscription →
invoice → payment chain for a share of the orders, and one alert channel. Deterministic
(`--seed`). Not for production data: it backdates exception timestamps to build history.

The rows are ones the engine could have produced: every run carries its canonical event (an
envelope that validates against its schema), steps start after the previous one finished and
finish after they start, an invoice bills an order activated before it (linked to its
subscription), a payment pays an invoice posted before it, and each flow carries its deal id.
"""

from __future__ import annotations

import math
import random
import uuid
import zlib
from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from sync.canonical.store import refresh_payment_state
from sync.engine.exceptions import open_exception
from sync.models import (
    ConnectorCall,
    ConnectorState,
    CurrencyRate,
    Customer,
    FlowRun,
    FlowStep,
    FlowType,
    Invoice,
    LegalEntity,
    Order,
    Payment,
    Subscription,
    SyncException,
)

ACCOUNTS = [
    "Globex Corporation",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Imports",
    "Soylent Foods",
    "Tyrell Systems",
    "Cyberdyne Labs",
    "Aperture Science",
    "Wonka Industries",
    "Massive Dynamic",
    "Oscorp",
    "Gringotts Bank",
    "Nakatomi Trading",
    "Pied Piper",
    "Dunder Mifflin",
    "Monarch Solutions",
    "Blue Sun Logistics",
]
ENTITIES = [("US01", "Q2C Inc. (US)", "USD", 0.6), ("DE01", "Q2C GmbH", "EUR", 0.25), ("UK01", "Q2C Ltd (UK)", "GBP", 0.15)]
RATES = {"EUR": Decimal("1.08"), "GBP": Decimal("1.27")}
STEPS = {
    FlowType.ORDER_ACTIVATION: [
        ("validate", "hub"),
        ("erp_customer", "netsuite"),
        ("billing_customer", "stripe"),
        ("erp_sales_order", "netsuite"),
        ("billing_subscription", "stripe"),
        ("crm_status", "hub"),
    ],
    FlowType.AMENDMENT: [("validate", "hub"), ("billing_change", "stripe"), ("erp_change", "netsuite"), ("crm_status", "hub")],
    FlowType.RENEWAL: [("validate", "hub"), ("billing_renewal", "stripe"), ("erp_renewal", "netsuite"), ("crm_status", "hub")],
    FlowType.INVOICE_POSTING: [("map_invoice", "hub"), ("erp_customer", "netsuite"), ("erp_invoice", "netsuite"), ("crm_status", "hub")],
    FlowType.PAYMENT_STATUS: [("map_payment", "hub"), ("erp_payment", "netsuite"), ("crm_status", "hub")],
    FlowType.CUSTOMER_SYNC: [("match", "hub"), ("erp_customer", "netsuite"), ("billing_customer", "stripe"), ("crm_ids", "hub")],
}
SLA_MIN = {FlowType.ORDER_ACTIVATION: 15, FlowType.AMENDMENT: 30, FlowType.RENEWAL: 60, FlowType.INVOICE_POSTING: 60, FlowType.PAYMENT_STATUS: 15}
FAILURES = {
    FlowType.ORDER_ACTIVATION: [
        ("erp_sales_order", "netsuite", "validation", "Invalid Field Value SKU-PLAT-ANNUAL for item.items[0].item"),
        ("billing_subscription", "stripe", "not_found", "No such price: price_legacy_2023"),
        ("erp_sales_order", "netsuite", "rate_limit", "SSS_REQUEST_LIMIT_EXCEEDED: concurrency limit"),
    ],
    FlowType.AMENDMENT: [
        ("billing_change", "stripe", "conflict", "Subscription schedule is already in a phase transition"),
        ("erp_change", "netsuite", "mapping", "No revenue arrangement for contract line"),
    ],
    FlowType.RENEWAL: [("erp_renewal", "netsuite", "validation", "Subsidiary mismatch between customer and item")],
    FlowType.INVOICE_POSTING: [
        ("erp_invoice", "netsuite", "mapping", "Tax code EU-VAT-19 has no NetSuite mapping"),
        ("erp_invoice", "netsuite", "timeout", "Read timed out after 20s"),
    ],
    FlowType.PAYMENT_STATUS: [("erp_payment", "netsuite", "not_found", "Invoice not found in NetSuite")],
    FlowType.CUSTOMER_SYNC: [("match", "hub", "duplicate", "Two Salesforce accounts share tax id DE811907980")],
}


class Command(BaseCommand):
    help = "Seed realistic KPI history (flow runs, steps, exceptions, connector calls, orders → payments)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--scale", type=float, default=1.0, help="multiplies the daily volumes (1 ≈ 90 flows/day)")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, days: int, scale: float, seed: int, **options):
        rng = random.Random(seed)
        now = timezone.now()
        for code, name, currency, _ in ENTITIES:
            LegalEntity.objects.get_or_create(code=code, defaults={"name": name, "base_currency": currency})
        for currency, rate in RATES.items():
            CurrencyRate.objects.get_or_create(currency=currency, valid_from=(now - timedelta(days=days + 60)).date(), defaults={"rate_to_reporting": rate})
        volumes = {
            FlowType.ORDER_ACTIVATION: 24,
            FlowType.AMENDMENT: 9,
            FlowType.RENEWAL: 3,
            FlowType.INVOICE_POSTING: 28,
            FlowType.PAYMENT_STATUS: 18,
            FlowType.CUSTOMER_SYNC: 8,
        }
        counter = FlowRun.objects.count()
        runs: list[tuple[FlowRun, bool, bool]] = []
        with transaction.atomic():
            for day in range(days, -1, -1):
                for flow_type, per_day in volumes.items():
                    n = max(0, int(rng.gauss(per_day * scale, per_day * scale * 0.2)))
                    for _ in range(n):
                        counter += 1
                        started = now - timedelta(days=day, seconds=rng.uniform(0, 86400))
                        if started > now - timedelta(minutes=1):
                            continue
                        runs.append(self._flow(rng, flow_type, started, now, counter))
            runs = self._link(rng, runs)
            FlowRun.objects.bulk_create([r for r, _, _ in runs], batch_size=2000)
            steps = []
            for run, failed, _ in runs:
                steps.extend(self._steps(rng, run, failed, now))
            FlowStep.objects.bulk_create(steps, batch_size=5000)
        self._exceptions(rng, runs, now)
        self._canonical(rng, [r for r, _, _ in runs], now)
        self._connectors(rng, now, scale)
        self.stdout.write(self.style.SUCCESS(f"Seeded {len(runs)} flow runs and {len(steps)} steps over {days} days."))

    def _flow(self, rng, flow_type, started, now, n):
        code, _, currency, _ = rng.choices(ENTITIES, weights=[e[3] for e in ENTITIES])[0]
        amount = Decimal(rng.choice([4800, 9600, 12000, 18000, 24000, 36000, 60000, 120000])) if flow_type != FlowType.CUSTOMER_SYNC else Decimal(0)
        if flow_type in (FlowType.INVOICE_POSTING, FlowType.PAYMENT_STATUS):
            amount = (amount / 12).quantize(Decimal("0.01"))
        if flow_type == FlowType.AMENDMENT:
            amount = (amount * Decimal(rng.choice(["0.1", "0.2", "0.25", "-0.1"]))).quantize(Decimal("0.01"))
        rate = RATES.get(currency, Decimal(1))
        median_min = {FlowType.ORDER_ACTIVATION: 7, FlowType.INVOICE_POSTING: 5, FlowType.AMENDMENT: 6, FlowType.RENEWAL: 12}.get(flow_type, 2)
        duration = timedelta(minutes=median_min * math.exp(rng.gauss(0, 0.75)))
        fails = rng.random() < {FlowType.ORDER_ACTIVATION: 0.05, FlowType.AMENDMENT: 0.09, FlowType.INVOICE_POSTING: 0.04, FlowType.CUSTOMER_SYNC: 0.03}.get(
            flow_type, 0.02
        )
        if fails:
            duration *= rng.uniform(3, 30)
        done_at = started + duration
        stuck = fails and rng.random() < 0.35 or done_at > now
        prefix = {
            FlowType.ORDER_ACTIVATION: "ORD",
            FlowType.AMENDMENT: "AMD",
            FlowType.RENEWAL: "REN",
            FlowType.INVOICE_POSTING: "INV",
            FlowType.PAYMENT_STATUS: "PAY",
            FlowType.CUSTOMER_SYNC: "CUS",
        }[flow_type]
        sla = SLA_MIN.get(flow_type)
        due = started + timedelta(minutes=sla) if sla else None
        run = FlowRun(
            flow_type=flow_type,
            status=FlowRun.Status.FAILED if stuck and fails else (FlowRun.Status.RUNNING if stuck else FlowRun.Status.COMPLETED),
            correlation_id=uuid.uuid4(),
            idempotency_key=f"demo:{flow_type}:{n}:{uuid.uuid4().hex[:8]}",
            document_number=f"{prefix}-{10000 + n}",
            account_name=rng.choice(ACCOUNTS),
            legal_entity=code,
            amount=amount,
            currency=currency,
            amount_reporting=(amount * rate).quantize(Decimal("0.01")),
            started_at=started,
            business_started_at=started,
            sla_due_at=due,
            had_exception=fails,
            retries=rng.choice([0, 0, 0, 1, 2]) if fails else 0,
            current_step="" if not stuck else STEPS[flow_type][-3 if len(STEPS[flow_type]) > 3 else -1][0],
        )
        if flow_type == FlowType.ORDER_ACTIVATION:
            run.closed_won_at = started
        if flow_type == FlowType.INVOICE_POSTING:
            run.finalized_at = started
        if not stuck:
            run.business_completed_at = run.finished_at = done_at
            run.sla_breached = bool(due and done_at > due)
            if flow_type == FlowType.ORDER_ACTIVATION:
                run.activated_at = done_at
            if flow_type == FlowType.INVOICE_POSTING:
                run.posted_at = done_at
        else:
            run.sla_breached = bool(due and due < now)
        return run, fails, stuck

    def _steps(self, rng, run, failed, now):
        out, at = [], run.business_started_at
        end = run.business_completed_at or now
        plan = STEPS.get(run.flow_type, [])
        failing = next((f for f in FAILURES.get(run.flow_type, []) if rng.random() < 0.6), (FAILURES.get(run.flow_type) or [(None,)])[0]) if failed else None
        for seq, (name, system) in enumerate(plan, start=1):
            span = (end - at) / max(len(plan) - seq + 1, 1)
            status, error_class, message, attempts = FlowStep.Status.SUCCEEDED, "", "", 1
            if failed and failing and failing[0] == name:
                attempts = rng.choice([1, 2, 3, 5])
                error_class, message = failing[2], failing[3]
                if run.business_completed_at is None:
                    status = FlowStep.Status.FAILED
            elif run.business_completed_at is None and any(s.status == FlowStep.Status.FAILED for s in out):
                status = FlowStep.Status.PENDING
            elif run.business_completed_at is None and seq == len(plan) - 2 and not failed:
                status = FlowStep.Status.RUNNING
            out.append(
                FlowStep(
                    flow_run=run,
                    seq=seq,
                    name=name,
                    system=system,
                    status=status,
                    attempts=attempts,
                    error_class=error_class,
                    error_message=message,
                    idempotency_key=f"q2c-{run.idempotency_key}:{name}",
                    started_at=at if status != FlowStep.Status.PENDING else None,
                    finished_at=at + span if status in (FlowStep.Status.SUCCEEDED, FlowStep.Status.FAILED) else None,
                    request_summary={} if status == FlowStep.Status.PENDING else {"system": system, "operation": name, "data": run.context["event"]["data"]},
                )
            )
            at = at + span
        return out

    def _exceptions(self, rng, runs, now):
        for run, failed, stuck in runs:
            if not failed:
                continue
            step = next((s for s in run.steps.all() if s.error_class), None)
            if step is None:
                continue
            exc = open_exception(
                system=step.system,
                error_class=step.error_class,
                message=step.error_message,
                flow_run=run,
                step=step,
                payload=step.request_summary or {"data": run.context["event"]["data"]},
                response={"status_code": 400 if step.error_class not in ("timeout", "rate_limit") else None, "code": step.error_class, "field": ""},
            )
            first = step.started_at or run.business_started_at
            update = {"first_seen": first, "last_seen": first + timedelta(minutes=rng.uniform(1, 30)), "occurrences": step.attempts}
            if not stuck:
                update.update(
                    status=SyncException.Status.RESOLVED, resolved_at=run.business_completed_at, resolution_note="The step succeeded on a later attempt."
                )
            SyncException.objects.filter(pk=exc.pk).update(**update)
        # no reconciliation breaks here: only a reconciliation run (sync/reconciliation) produces them

    def _canonical(self, rng, runs, now):
        """The canonical chain behind the flows: each activated order (of the last 400) gets its
        customer, order and subscription; each invoice flow linked to it its invoice (linked to the
        subscription, posted when the flow completed); each payment flow its payment."""
        entities = {e.code: e for e in LegalEntity.objects.all()}
        orders = [r for r in runs if r.flow_type == FlowType.ORDER_ACTIVATION][-400:]
        subscriptions = {}
        for run in orders:
            customer, _ = Customer.objects.get_or_create(
                name=run.account_name, defaults={"currency": run.currency, "legal_entity": entities.get(run.legal_entity)}
            )
            order, created = Order.objects.get_or_create(
                number=run.document_number,
                defaults={
                    "customer": customer,
                    "legal_entity": entities.get(run.legal_entity),
                    "currency": run.currency,
                    "total_amount": run.amount,
                    "closed_won_at": run.business_started_at,
                    "activated_at": run.business_completed_at,
                    "status": Order.Status.ACTIVATED if run.business_completed_at else Order.Status.CLOSED_WON,
                },
            )
            if not created or run.business_completed_at is None:
                continue
            subscriptions[run.document_number] = Subscription.objects.create(
                customer=customer,
                order=order,
                currency=run.currency,
                arr=run.amount,
                status=Subscription.Status.ACTIVE,
                billing_starts_at=run.business_completed_at,
                current_period_end=run.business_completed_at + timedelta(days=30),
            )
        invoices = {}
        for run in runs:
            sub = subscriptions.get(run.deal_id)
            if run.flow_type != FlowType.INVOICE_POSTING or sub is None:
                continue
            invoices[run.document_number] = Invoice.objects.create(
                number=run.document_number,
                customer_id=sub.customer_id,
                subscription=sub,
                legal_entity=entities.get(run.legal_entity),
                currency=run.currency,
                subtotal=run.amount,
                total=run.amount,
                amount_remaining=run.amount,
                due_date=(run.business_started_at + timedelta(days=14)).date(),
                finalized_at=run.business_started_at,
                posted_at=run.business_completed_at,
            )
        for run in runs:
            invoice = invoices.get(run.context["event"]["data"].get("invoice_number")) if run.flow_type == FlowType.PAYMENT_STATUS else None
            if invoice is None:
                continue
            failed = run.context["event"]["type"] == "payment.failed.v1"
            Payment.objects.create(
                invoice=invoice,
                customer_id=invoice.customer_id,
                status=Payment.Status.FAILED if failed else Payment.Status.RECEIVED,
                amount=run.amount,
                currency=invoice.currency,
                occurred_at=run.business_started_at,
                failure_reason="card_declined" if failed else "",
            )
            refresh_payment_state(invoice.pk)

    # --- the canonical events behind the runs, and the links between them ------------------------
    def _link(self, rng, runs):
        """Give each run its canonical event and deal id, in business time order: invoices bill
        orders activated before them (the oldest not yet invoiced first), payments pay invoices
        posted before them, amendments and renewals change orders activated before them. A run
        with nothing before it to refer to (the first hours of the history) is left out."""
        runs = sorted(runs, key=lambda r: r[0].business_started_at)
        activated = sorted(
            (r for r, _, _ in runs if r.flow_type == FlowType.ORDER_ACTIVATION and r.business_completed_at), key=lambda r: r.business_completed_at
        )
        posted = sorted((r for r, _, _ in runs if r.flow_type == FlowType.INVOICE_POSTING and r.business_completed_at), key=lambda r: r.business_completed_at)
        uninvoiced, invoiced, unpaid = list(activated), [], list(posted)
        kept = []
        for run, fails, stuck in runs:
            at = run.business_started_at
            if run.flow_type == FlowType.INVOICE_POSTING:
                order = next((o for o in uninvoiced if o.business_completed_at < at), None)
                if order is not None:
                    uninvoiced.remove(order)
                    invoiced.append(order)
                else:  # a later period's invoice of an order already invoiced once
                    earlier = [o for o in invoiced if o.business_completed_at < at]
                    order = rng.choice(earlier) if earlier else None
                if order is None:
                    continue
                self._follow(run, order, amount=(order.amount / 12).quantize(Decimal("0.01")))
            elif run.flow_type == FlowType.PAYMENT_STATUS:
                invoice = next((i for i in unpaid if i.business_completed_at < at and i.deal_id), None)
                if invoice is None:
                    continue
                unpaid.remove(invoice)
                self._follow(run, invoice, amount=invoice.amount)
            elif run.flow_type in (FlowType.AMENDMENT, FlowType.RENEWAL):
                earlier = [o for o in activated if o.business_completed_at < at]
                if not earlier:
                    continue
                order = rng.choice(earlier[-200:])
                self._follow(run, order, amount=run.amount if run.flow_type == FlowType.AMENDMENT else order.amount)
            elif run.flow_type == FlowType.ORDER_ACTIVATION:
                run.deal_id = run.document_number
            run.context = {"event": self._event(run), "steps": {}}
            kept.append((run, fails, stuck))
        return kept

    @staticmethod
    def _follow(run, parent, *, amount):
        """A run about a document of `parent`'s deal: same deal, account, entity and currency."""
        run.deal_id = parent.deal_id or parent.document_number
        run.account_name, run.legal_entity, run.currency = parent.account_name, parent.legal_entity, parent.currency
        run.amount = amount
        run.amount_reporting = (amount * RATES.get(parent.currency, Decimal(1))).quantize(Decimal("0.01"))
        run.context = {"parent": parent.document_number}

    @staticmethod
    def _event(run) -> dict:
        """The canonical event (envelope + data in its schema's shape) that would have started the run."""
        at = run.business_started_at.isoformat()
        money = f"{run.amount:.2f}"
        account = {"external_id": f"001DEMO{zlib.crc32(run.account_name.encode()) % 10**8:08d}", "name": run.account_name}
        parent = (run.context or {}).get("parent", "")
        if run.flow_type == FlowType.ORDER_ACTIVATION:
            seats, unit_price = _seat_lines(run.amount)
            kind, source = "order.closed_won.v2", "salesforce"  # what the engine stores: the current version
            data = {
                "order_number": run.document_number,
                "account": account,
                "legal_entity": run.legal_entity,
                "currency": run.currency,
                "closed_won_at": at,
                "total_amount": money,
                "lines": [{"sku": "PLAT-SEAT", "quantity": str(seats), "unit_price": f"{unit_price:.2f}", "charge_type": "recurring", "interval": "month"}],
            }
        elif run.flow_type == FlowType.AMENDMENT:
            kind, source = "subscription.amended.v1", "salesforce"
            data = {
                "amendment_id": run.document_number,
                "order_number": parent,
                "requested_at": at,
                "currency": run.currency,
                "arr_delta": money,
                "changes": [{"sku": "PLAT-SEAT", "quantity": "1", "unit_price": f"{abs(run.amount) / 12:.2f}", "billing": "recurring", "interval": "month"}],
            }
        elif run.flow_type == FlowType.RENEWAL:
            kind, source = "subscription.renewed.v1", "salesforce"
            data = {"renewal_id": run.document_number, "order_number": parent, "due_at": at, "term_months": 12, "currency": run.currency, "arr": money}
        elif run.flow_type == FlowType.INVOICE_POSTING:
            kind, source = "invoice.finalized.v1", "stripe"
            data = {
                "invoice_number": run.document_number,
                "order_number": parent,
                "account_name": run.account_name,
                "legal_entity": run.legal_entity,
                "currency": run.currency,
                "subtotal": money,
                "tax": "0.00",
                "total": money,
                "finalized_at": at,
                "lines": [
                    {"sku": "PLAT-SEAT", "description": "Platform seats", "quantity": "1", "unit_amount": money, "amount": money, "charge_type": "recurring"}
                ],
            }
        elif run.flow_type == FlowType.PAYMENT_STATUS:
            kind, source = "payment.received.v1", "stripe"
            data = {"payment_id": run.document_number, "invoice_number": parent, "amount": money, "currency": run.currency, "received_at": at}
        else:
            kind, source = "customer.upserted.v1", "salesforce"
            data = {"account": account, "currency": run.currency, "legal_entity": run.legal_entity}
        return {"id": f"demo-{run.idempotency_key}", "type": kind, "source": source, "occurred_at": at, "correlation_id": str(run.correlation_id), "data": data}

    def _connectors(self, rng, now, scale):
        calls = []
        profile = {"salesforce": (180, 0.01), "netsuite": (420, 0.04), "stripe": (120, 0.015)}
        classes = {"salesforce": ["auth", "rate_limit"], "netsuite": ["rate_limit", "timeout", "validation"], "stripe": ["rate_limit", "not_found"]}
        for minutes_ago in range(24 * 60, 0, -5):
            for system, (median_ms, err) in profile.items():
                burst = system == "netsuite" and 300 < minutes_ago < 360
                for _ in range(max(1, int(rng.gauss(12 * scale, 3)))):
                    error = rng.choice(classes[system]) if rng.random() < (err * 6 if burst else err) else ""
                    calls.append(
                        ConnectorCall(
                            system=system,
                            operation="request",
                            status_code=200 if not error else 429 if error == "rate_limit" else 400,
                            error_class=error,
                            latency_ms=int(median_ms * math.exp(rng.gauss(0, 0.5)) * (3 if burst else 1)),
                        )
                    )
        created = ConnectorCall.objects.bulk_create(calls, batch_size=5000)
        # spread them over the day (auto_now_add stamped them now)
        ids = [c.pk for c in created]
        per = len(ids) / (24 * 12)
        for i in range(24 * 12):
            chunk = ids[int(i * per) : int((i + 1) * per)]
            ConnectorCall.objects.filter(pk__in=chunk).update(at=now - timedelta(minutes=24 * 60 - i * 5 - rng.uniform(0, 5)))
        for system, circuit in (("salesforce", "closed"), ("netsuite", "half_open"), ("stripe", "closed")):
            ConnectorState.objects.update_or_create(
                system=system,
                defaults={
                    "circuit": circuit,
                    "last_success_at": now - timedelta(seconds=rng.uniform(5, 90)),
                    "last_error_at": now - timedelta(minutes=rng.uniform(3, 50)) if system == "netsuite" else None,
                    "last_error": "SSS_REQUEST_LIMIT_EXCEEDED: concurrency limit reached" if system == "netsuite" else "",
                },
            )


def _seat_lines(annual: Decimal) -> tuple[int, Decimal]:
    """Seats × monthly unit price whose first-year value is exactly `annual` (the deal page shows
    the lines' value beside the flow's amount: they must agree to the cent). About 45 a seat."""
    monthly_cents = int((Decimal(annual) * 100 / 12).to_integral_value())
    for seats in range(max(int(annual / 12 / 45), 1), 0, -1):
        if monthly_cents % seats == 0:
            return seats, Decimal(monthly_cents // seats) / 100
    return 1, Decimal(monthly_cents) / 100
