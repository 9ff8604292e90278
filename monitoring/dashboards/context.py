"""What every KPI page reads from its request: the window (?start=&end= or ?days=N, with
?entity= and ?currency=), the window's part of the query string for links to the rows behind
a figure, and the page header's context."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from monitoring.kpis.window import Window

from .selectors import legal_entities

QUICK_RANGES = [("1", "24 h"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days")]
WINDOW_PARAMS = ("start", "end", "days", "entity", "currency")


def _parse_when(value: str, *, end: bool = False) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            return None
        parsed = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
    return parsed


def window_from(request: HttpRequest) -> Window:
    """?start=&end= (dates or ISO datetimes, end inclusive for dates) or ?days=N; default 30 days."""
    entity = request.GET.get("entity", "").strip()
    currency = request.GET.get("currency", "").strip().upper()
    start, end = _parse_when(request.GET.get("start", "")), _parse_when(request.GET.get("end", ""), end=True)
    if start and end and start < end:
        return Window(start, end, entity, currency)
    try:
        days = max(1, min(int(request.GET.get("days", 30)), 3660))
    except ValueError:
        days = 30
    return Window.last_days(days, entity=entity, currency=currency)


def window_query(request: HttpRequest) -> str:
    """The window part of the query string, to carry into links to the rows behind a figure."""
    params = request.GET.copy()
    for key in list(params):
        if key not in WINDOW_PARAMS or not params.get(key):
            params.pop(key)
    return params.urlencode()


def kpi_context(request: HttpRequest, window: Window, title: str) -> dict:
    return {
        "page_title": title,
        "window": window,
        "entities": legal_entities(),
        "quick_ranges": QUICK_RANGES,
        "window_qs": window_query(request),
    }
