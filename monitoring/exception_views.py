"""The exception queue pages: list, detail, and actions (htmx rows)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from sync.models import FlowType, SyncException

from . import services
from .selectors import exceptions as exception_selectors
from .views import _page, _render, portal_page


@portal_page("monitoring.view_exceptions")
def exceptions(request: HttpRequest) -> HttpResponse:
    filters = exception_selectors.ExceptionFilters.from_request(request.GET)
    context = {
        "page_title": "Exceptions",
        "filters": filters,
        "page_obj": _page(request, exception_selectors.exception_list(filters=filters)),
        "statuses": SyncException.Status.choices,
        "error_classes": exception_selectors.ERROR_CLASS_CHOICES,
        "flow_types": FlowType.choices,
        "systems": exception_selectors.SYSTEM_CHOICES,
        "counts": exception_selectors.exception_counts(),
    }
    partial = "counts" if request.GET.get("partial") == "counts" else "table"
    return _render(request, "monitoring/exceptions.html", context, partial)


@portal_page("monitoring.view_exceptions")
def exception_detail(request: HttpRequest, pk: int) -> HttpResponse:
    exc = get_object_or_404(SyncException.objects.select_related("flow_run", "step", "assignee"), pk=pk)
    context = {"page_title": f"Exception #{exc.pk}", "exc": exc, **exception_selectors.exception_story(exc)}
    return render(request, "monitoring/exception_detail.html", context)


@require_POST
@portal_page("sync.act_on_exception")
def exception_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """One action on one exception. htmx gets the updated row; a plain form post is redirected back."""
    get_object_or_404(SyncException, pk=pk)
    error = ""
    try:
        services.exception_act(exception_id=pk, action=action, user=request.user, data=request.POST)
    except ValidationError as exc:
        error = " ".join(exc.messages)
    if request.htmx:
        row = SyncException.objects.select_related("assignee").get(pk=pk)
        response = render(request, "monitoring/exceptions.html#row", {"exc": row, "can_act": True, "error": error, "error_for": pk})
        if not error:
            trigger_client_event(response, "exceptionsChanged")
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Exception #{pk}: {action} done.")
    return redirect("monitoring:exception_detail", pk=pk)
