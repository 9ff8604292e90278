"""Display helpers: durations, money with currency, percentages, query-string edits."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """12.3 → '12s', 754 → '12m 34s', 90061 → '1d 1h'."""
    if seconds is None or seconds == "":
        return "—"
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    seconds = int(float(seconds))
    if seconds < 0:
        return "—"
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@register.filter
def age(value) -> str:
    """Time since a datetime, as a duration."""
    if not value:
        return "—"
    return duration((timezone.now() - value).total_seconds())


@register.simple_tag
def money(amount, currency="") -> str:
    """Decimal money with its ISO currency: 'USD 12,345.00'."""
    if amount is None or amount == "":
        return "—"
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    return f"{currency} {value:,.2f}".strip()


@register.filter
def pct(rate, digits: int = 1) -> str:
    if rate is None or rate == "":
        return "—"
    return f"{float(rate) * 100:.{int(digits)}f}%"


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with some parameters changed (None/'' removes one)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter
def is_past(value) -> bool:
    """True for a datetime before now (e.g. an SLA due time already passed)."""
    return bool(value) and value < timezone.now()


@register.filter
def share(part, whole) -> float:
    """part ÷ whole as a 0–100 number for inline bars (0 when whole is empty)."""
    try:
        return round(float(part) / float(whole) * 100, 1) if float(whole) else 0.0
    except (TypeError, ValueError):
        return 0.0


@register.filter
def get(mapping, key):
    """mapping[key] in a template ({{ d|get:k }}); None when missing."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.simple_tag
def money_short(amount, currency="") -> str:
    """Compact money for tiles: 'USD 1.2M', 'EUR 45.3k', 'USD 950.00'."""
    if amount is None or amount == "":
        return "—"
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    for size, suffix in ((Decimal(1_000_000_000), "B"), (Decimal(1_000_000), "M"), (Decimal(10_000), "k")):
        if abs(value) >= size:
            shown = value / (size if suffix != "k" else Decimal(1000))
            return f"{currency} {shown:,.1f}{suffix}".strip()
    return f"{currency} {value:,.2f}".strip()


@register.filter
def span(seconds) -> str:
    """A policy target or bucket edge: 900 → '15 min', 3600 → '1 h'."""
    from monitoring.services import short_span

    if seconds is None or seconds == "":
        return "—"
    return short_span(int(seconds))
