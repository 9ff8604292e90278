"""What every KPI page reads from its request: the window (?start=&end= as dates, end inclusive,
or ?days=N, with ?entity= and ?currency=; read by monitoring.kpis.window.window_from_params),
the window's part of the query string for links to the rows behind a figure, and the page
header's context (with a readable message for each window parameter that could not be used)."""

from __future__ import annotations

from django.http import HttpRequest

from monitoring.kpis.window import Window, WindowChoice, window_from_params

from .selectors import legal_entities

QUICK_RANGES = [("1", "24 h"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days")]
WINDOW_PARAMS = ("start", "end", "days", "entity", "currency")
WINDOW_LABELS = {"start": "From", "end": "To", "days": "Range", "entity": "Legal entity", "currency": "Currency"}


def window_choice(request: HttpRequest) -> WindowChoice:
    """The request's window and the problems reading it, read once per request."""
    choice = getattr(request, "_window_choice", None)
    if choice is None:
        choice = window_from_params(request.GET)
        request._window_choice = choice
    return choice


def window_from(request: HttpRequest) -> Window:
    """The window the page shows (the default one when the request's could not be used)."""
    return window_choice(request).window


def window_query(request: HttpRequest) -> str:
    """The window part of the query string, to carry into links to the rows behind a figure
    (only the parameters that were understood)."""
    errors = window_choice(request).errors
    params = request.GET.copy()
    for key in list(params):
        if key not in WINDOW_PARAMS or not params.get(key) or key in errors or (key in ("start", "end") and ("start" in errors or "end" in errors)):
            params.pop(key)
    return params.urlencode()


def kpi_context(request: HttpRequest, window: Window, title: str) -> dict:
    choice = window_choice(request)
    return {
        "page_title": title,
        "window": window,
        "window_explicit": choice.explicit,
        "window_errors": [{"param": name, "label": WINDOW_LABELS.get(name, name), "message": message} for name, message in choice.errors.items()],
        "entities": legal_entities(),
        "quick_ranges": QUICK_RANGES,
        "window_qs": window_query(request),
    }
