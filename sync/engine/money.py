"""Reporting-currency conversion from the rate table (never float)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from sync.flows.registry import writeback_steps
from sync.models import CurrencyRate, FlowRun, FlowType, Invoice

CENT = Decimal("0.01")


def rate_for(currency: str, on: date | None = None) -> Decimal | None:
    """Units of the reporting currency per unit of `currency` on a date (default today): the
    latest rate valid on or before it — a rate entered for a later day does not apply yet."""
    currency = (currency or "").upper()
    if not currency or currency == settings.REPORTING_CURRENCY:
        return Decimal("1")
    rates = CurrencyRate.objects.filter(currency=currency, valid_from__lte=on or timezone.localdate())
    rate = rates.order_by("-valid_from").values_list("rate_to_reporting", flat=True).first()
    return rate


def to_reporting(amount: Decimal | None, currency: str, on: date | None = None) -> Decimal:
    """Amount in the reporting currency, or 0 when the currency has no rate on that day: an amount
    converted 1:1 would be a wrong figure. The KPIs convert again at their own day and list the
    currencies they cannot convert (monitoring.kpis.money.unconverted), so nothing hides."""
    if not amount:
        return Decimal("0")
    rate = rate_for(currency, on)
    return (Decimal(amount) * rate).quantize(CENT) if rate is not None else Decimal("0")


def flow_risk(run: FlowRun, step_name: str = "") -> Decimal:
    """Revenue at risk of one flow, in the reporting currency (docs/MONEY.md): an order → its
    first-year contract value (the run's amount); an amendment → |ARR change| (a downgrade puts
    the over-billing at risk); an invoice → its amount remaining; a received payment → its amount;
    a failed-payment notice moves no money → 0; a failure of a CRM write-back step alone → 0."""
    if step_name and step_name in writeback_steps():
        return Decimal("0")
    amount = Decimal(str(run.amount_reporting or 0)) or to_reporting(Decimal(str(run.amount or 0)), run.currency)
    if run.flow_type == FlowType.AMENDMENT:
        return abs(amount)
    if run.flow_type == FlowType.PAYMENT_STATUS and run.context.get("event", {}).get("type") == "payment.failed.v1":
        return Decimal("0")
    if run.flow_type == FlowType.INVOICE_POSTING and run.document_number:
        invoice = Invoice.objects.filter(number=run.document_number).only("amount_remaining", "currency").first()
        if invoice is not None:
            return to_reporting(invoice.amount_remaining, invoice.currency)
    return abs(amount)
