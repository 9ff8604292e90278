"""Reporting-currency conversion from the rate table (never float)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.conf import settings

from sync.models import CurrencyRate

CENT = Decimal("0.01")


def rate_for(currency: str, on: date | None = None) -> Decimal | None:
    """Units of the reporting currency per unit of `currency` on a date (latest rate on or before)."""
    currency = (currency or "").upper()
    if not currency or currency == settings.REPORTING_CURRENCY:
        return Decimal("1")
    rates = CurrencyRate.objects.filter(currency=currency)
    if on is not None:
        rates = rates.filter(valid_from__lte=on)
    rate = rates.order_by("-valid_from").values_list("rate_to_reporting", flat=True).first()
    return rate


def to_reporting(amount: Decimal | None, currency: str, on: date | None = None) -> Decimal:
    """Amount in the reporting currency; an unknown rate counts at 1:1 rather than hiding the risk."""
    if not amount:
        return Decimal("0")
    rate = rate_for(currency, on)
    return (Decimal(amount) * (rate if rate is not None else Decimal("1"))).quantize(CENT)
