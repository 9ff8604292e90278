"""Display formatting as plain functions: durations, money with currency, percentages, spans,
query-string edits. Charts, tiles, filters and alerts call them directly; the template tags in
monitoring/templatetags/portal.py only register them, so nothing imports the template layer."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.utils import timezone


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


def age(value) -> str:
    """Time since a datetime, as a duration."""
    if not value:
        return "—"
    return duration((timezone.now() - value).total_seconds())


def until(value) -> str:
    """Time from now to a datetime: 'in 42s', 'now' once it has passed."""
    if not value:
        return "—"
    seconds = (value - timezone.now()).total_seconds()
    return f"in {duration(seconds)}" if seconds >= 1 else "now"


def money(amount, currency="") -> str:
    """Decimal money with its ISO currency: 'USD 12,345.00'."""
    if amount is None or amount == "":
        return "—"
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    return f"{currency} {value:,.2f}".strip()


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


def pct(rate, digits: int = 1) -> str:
    if rate is None or rate == "":
        return "—"
    return f"{float(rate) * 100:.{int(digits)}f}%"


def short_span(seconds: int | None) -> str:
    """300 → '5 min', 3600 → '1 h', 86400 → '1 d' (bucket edges and policy targets)."""
    if seconds is None:
        return "∞"
    seconds = int(seconds)
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return duration(seconds)


def span(seconds) -> str:
    """A policy target or bucket edge: 900 → '15 min', 3600 → '1 h'."""
    if seconds is None or seconds == "":
        return "—"
    return short_span(int(seconds))


def _day(value) -> str:
    return f"{value:%b} {value.day}"


def window_label(window) -> str:
    """A KPI window in words, in the viewer's zone: whole days with the last one included
    ("Nov 1 – Nov 30, 2026", "Nov 30, 2026"), a rolling window with its times
    ("Oct 21, 14:05 – Nov 20, 2026, 14:05")."""
    if window is None:
        return ""
    if window.whole_days:
        first, last = window.first_day, window.last_day
        if first == last:
            return f"{_day(last)}, {last.year}"
        return f"{_day(first)}{'' if first.year == last.year else f', {first.year}'} – {_day(last)}, {last.year}"
    start, end = timezone.localtime(window.start), timezone.localtime(window.end)
    head = f"{_day(start)}, {start:%H:%M}" if start.year == end.year else f"{_day(start)}, {start.year}, {start:%H:%M}"
    return f"{head} – {_day(end)}, {end.year}, {end:%H:%M}"


def moment(value) -> str:
    """An instant in the viewer's zone, said the way a window edge is meant: local midnight is
    "the end of" the day before ("the end of Oct 31"), anything else its day and time ("Dec 3, 15:00")."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    if local.hour == local.minute == local.second == 0 and not local.microsecond:
        return f"the end of {_day(local - timedelta(days=1))}"
    return f"{_day(local)}, {local:%H:%M}"


def day_label(value) -> str:
    """A date or instant as its local day: 'Nov 3, 2026'."""
    if value is None:
        return "—"
    if hasattr(value, "hour"):
        value = timezone.localtime(value)
    return f"{_day(value)}, {value.year}"


def is_past(value) -> bool:
    """True for a datetime before now (e.g. an SLA due time already passed)."""
    return bool(value) and value < timezone.now()


def share(part, whole) -> float:
    """part ÷ whole as a 0–100 number for inline bars (0 when whole is empty)."""
    try:
        return round(float(part) / float(whole) * 100, 1) if float(whole) else 0.0
    except (TypeError, ValueError):
        return 0.0


def get_item(mapping, key):
    """mapping[key]; None when missing (templates: {{ d|get:k }})."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


def query_string(params, **changes) -> str:
    """A query string (QueryDict) with some parameters changed (None/'' removes one): '?a=1&b=2', or '?'."""
    params = params.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"
