"""The exception queue pages: list, detail, actions (htmx rows), bulk retry, root-cause groups,
saved views and CSV export. Thin: parse, call one selector or service, render.

Every action answers htmx with the region it changed (a queue row, or the detail page's
actions card) and triggers `exceptionsChanged` so counts and history refresh themselves;
a plain form post is redirected back with a message.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import (
    HttpResponseClientRedirect,
    HttpResponseStopPolling,
    trigger_client_event,
)

from monitoring.live import selectors as live
from monitoring.models import BulkJob, PayloadEdit, SavedView
from monitoring.pages import paginate, portal_page, render_region
from sync.models import InboxEvent, SyncException

from . import export, forms, services
from . import selectors as sel
from .filters import ExceptionFilterSet

VIEW = "monitoring.view_exceptions"
ACT = "sync.act_on_exception"
ROW_ACTIONS = ("retry", "resolve", "ignore", "assign", "comment", "replay", "cancel")
PANELS = ("retry", "resolve", "ignore", "cancel", "replay")
DETAIL_PARTIALS = ("status", "history", "comments", "actions", "review")
DECIDE = services.DECIDE_CUSTOMER_MATCH
QUEUE_WAITING_SHOWN = 10  # the steps that try next, above the queue; the Connectors page lists more


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _safe_next(request: HttpRequest, fallback: str) -> str:
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return nxt
    return fallback


def _queue_context(request: HttpRequest, filters: ExceptionFilterSet) -> dict:
    return {
        "filters": filters,
        "queue_sort": filters.data["sort"],
        "filter_query": filters.querystring(),
        "assignees": forms.assignee_choices() if request.user.has_perm(ACT) else [],
        **sel.filter_options(),
    }


# --- the queue -------------------------------------------------------------------------------------
@portal_page(VIEW)
def exceptions(request: HttpRequest) -> HttpResponse:
    filters = ExceptionFilterSet(request.GET, request=request)
    partial = request.GET.get("partial")
    if partial == "counts":
        context = {"counts": sel.exception_counts(user=request.user), "filters": filters, "waiting": live.waiting_steps(limit=0)}
        return render(request, "monitoring/exceptions.html#counts", context)
    if partial == "waiting":
        return render(request, "monitoring/exceptions.html#waiting", {"waiting": live.waiting_steps(limit=QUEUE_WAITING_SHOWN)})
    page_obj = paginate(request, filters.qs)
    context = {
        "page_title": "Exceptions",
        "page_obj": page_obj,
        "counts": sel.exception_counts(user=request.user),
        "waiting": live.waiting_steps(limit=QUEUE_WAITING_SHOWN),
        "saved_views": list(sel.saved_views_for(request.user)),
        "my_groups": list(request.user.groups.order_by("name")),
        **_queue_context(request, filters),
    }
    return render_region(request, "monitoring/exceptions.html", context, "table")


@portal_page(VIEW)
@require_GET
def exception_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered queue as CSV (streamed, at most EXPORT_MAX_ROWS rows), money with its currency."""
    filters = ExceptionFilterSet(request.GET, request=request)
    rows = filters.qs[: export.EXPORT_MAX_ROWS]
    lines = export.csv_lines(rows, base_url=request.build_absolute_uri("/")[:-1], reporting_currency=settings.REPORTING_CURRENCY)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="exceptions-{stamp}.csv"'
    return response


@portal_page(VIEW)
def exception_groups(request: HttpRequest) -> HttpResponse:
    filters = ExceptionFilterSet(request.GET, request=request)
    paginator = Paginator(sel.cause_groups(filters=filters), 25)
    page_obj = paginator.get_page(request.GET.get("page"))
    groups = sel.with_sample_messages(list(page_obj.object_list))
    context = {"page_title": "Root causes", "page_obj": page_obj, "groups": groups, **_queue_context(request, filters)}
    return render_region(request, "monitoring/exception_groups.html", context, "groups")


# --- one exception ---------------------------------------------------------------------------------
def _detail_context(request: HttpRequest, exc: SyncException, **extra) -> dict:
    return {
        "page_title": f"Exception #{exc.pk}",
        "exc": exc,
        "assignees": forms.assignee_choices() if request.user.has_perm(ACT) else [],
        "can_approve": request.user.has_perm(services.APPROVE_FINANCIAL_EDITS),
        "can_decide": request.user.has_perm(DECIDE),
        "matching": settings.CUSTOMER_MATCHING,
        **sel.exception_story(exc),
        **extra,
    }


def _get_exception(pk: int) -> SyncException:
    return get_object_or_404(SyncException.objects.select_related("flow_run", "step", "assignee", "inbox_event"), pk=pk)


@portal_page(VIEW)
def exception_detail(request: HttpRequest, pk: int) -> HttpResponse:
    exc = _get_exception(pk)
    partial = request.GET.get("partial", "")
    if not request.htmx or request.htmx.boosted or partial not in (*DETAIL_PARTIALS, "row"):
        return render(request, "monitoring/exception_detail.html", _detail_context(request, exc))
    if partial == "row":
        return _row_response(request, pk)
    response = render(request, f"monitoring/exception_detail.html#{partial}", _detail_context(request, exc))
    if request.htmx and partial == "status" and exc.status != SyncException.Status.RETRYING and request.GET.get("was") == SyncException.Status.RETRYING:
        # the retry finished (resolved by the engine, or failed again): stop polling, refresh the rest
        response.status_code = HttpResponseStopPolling.status_code
        trigger_client_event(response, "exceptionsChanged")
    return response


# --- actions -------------------------------------------------------------------------------------
def _do(request: HttpRequest, exc: SyncException, action: str) -> str:
    """Run one action; returns a success message. Raises ValidationError with a readable message."""
    user, post = request.user, request.POST
    if action == "retry":
        services.exception_retry(exception_id=exc.pk, user=user)
        return f"Retry queued with idempotency key {exc.step.idempotency_key if exc.step_id else ''}."
    if action == "resolve":
        form = forms.ResolveForm(post)
        form.is_valid()
        services.exception_resolve(exception_id=exc.pk, user=user, note=form.cleaned_data.get("note", ""))
        return "Resolved."
    if action == "ignore":
        form = forms.IgnoreForm(post)
        form.is_valid()
        services.exception_ignore(exception_id=exc.pk, user=user, reason=form.cleaned_data.get("reason", ""))
        return "Ignored."
    if action == "assign":
        form = forms.AssignForm(post)
        form.is_valid()
        assigned = services.exception_assign(exception_id=exc.pk, user=user, assignee_username=form.cleaned_data.get("assignee", ""))
        return f"Assigned to {assigned.assignee.username}." if assigned.assignee_id else "Unassigned."
    if action == "comment":
        form = forms.CommentForm(post)
        form.is_valid()
        services.exception_comment(exception_id=exc.pk, user=user, text=form.cleaned_data.get("text", ""))
        return "Comment added."
    if action == "replay":
        services.exception_replay(exception_id=exc.pk, user=user)
        return "The inbound event was replayed."
    if action == "cancel":
        form = forms.CancelFlowForm(post)
        services.exception_cancel_flow(
            exception_id=exc.pk, user=user, reason=form.cleaned_data.get("reason", "") if form.is_valid() else "", confirmed=form.confirmed
        )
        return "Cancellation requested: a step under way finishes first, then compensation runs in the background; the history shows each undo."
    raise ValidationError({"action": f"Unknown action {action!r}."})


def _row_response(request: HttpRequest, pk: int, *, panel: str = "", error: str = "", notice: str = "") -> HttpResponse:
    exc = SyncException.objects.select_related("assignee", "flow_run", "step").get(pk=pk)
    back = _safe_next(request, reverse("monitoring:exceptions"))
    context = {
        "queue_sort": QueryDict(urlsplit(back).query).get("sort") or ExceptionFilterSet.defaults["sort"],  # the row keeps the list's first column
        "exc": exc,
        "panel": panel,
        "error": error,
        "notice": notice,
        "assignees": forms.assignee_choices(),
        "next": back,
        "preview": sel.retry_preview(exc) if panel == "retry" else None,
        "can_replay": bool(exc.inbox_event_id and exc.inbox_event.status == InboxEvent.Status.DEAD) if panel == "replay" else False,
    }
    return render(request, "monitoring/exceptions.html#row", context)


@portal_page(ACT)
def exception_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """GET: the confirmation panel for a queue row (htmx) or the detail page's form. POST: do it."""
    if action not in ROW_ACTIONS:
        return HttpResponseBadRequest(f"Unknown action {action!r}.")
    exc = _get_exception(pk)
    detail_url = reverse("monitoring:exception_detail", args=[pk])
    if request.method == "GET":
        if request.htmx:
            return _row_response(request, pk, panel=action if action in PANELS else "")
        return redirect(f"{detail_url}#action-{action}")
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    error = notice = ""
    try:
        notice = _do(request, exc, action)
    except ValidationError as refusal:
        error = _errors(refusal)
    if request.htmx:
        if request.htmx.target in ("actions", "comments"):
            context = _detail_context(request, _get_exception(pk), error=error, notice=notice, failed_action=action if error else "")
            response = render(request, f"monitoring/exception_detail.html#{request.htmx.target}", context)
        else:
            response = _row_response(request, pk, panel=action if error and action in PANELS else "", error=error, notice=notice)
        if not error:
            trigger_client_event(response, "exceptionsChanged")
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Exception #{pk}: {notice}")
    return redirect(_safe_next(request, detail_url))


@portal_page(ACT)
@require_POST
def exception_edit_payload(request: HttpRequest, pk: int) -> HttpResponse:
    exc = _get_exception(pk)
    form = forms.EditPayloadForm(request.POST)
    error = notice = ""
    if form.is_valid():
        try:
            edit = services.exception_edit_payload(
                exception_id=exc.pk, user=request.user, payload=form.cleaned_data["payload"], reason=form.cleaned_data["reason"]
            )
        except ValidationError as refusal:
            error = _errors(refusal)
        else:
            notice = (
                f"Edit #{edit.pk} saved; a second person with approval rights must approve it before it is applied."
                if edit.requires_approval
                else f"Edit #{edit.pk} applied and the step retried."
            )
    else:
        error = " ".join(e for errs in form.errors.values() for e in errs)
    if request.htmx:
        ctx = _detail_context(request, _get_exception(pk), error=error, notice=notice, failed_action="edit" if error else "")
        if error:
            ctx["edit_draft"] = request.POST.get("payload", "")
        response = render(request, "monitoring/exception_detail.html#actions", ctx)
        if not error:
            trigger_client_event(response, "exceptionsChanged")
        return response
    (messages.error if error else messages.success)(request, error or notice)
    return redirect(reverse("monitoring:exception_detail", args=[pk]) + "#action-edit")


@portal_page(ACT)
@require_POST
def payload_edit_decide(request: HttpRequest, pk: int, edit_id: int, decision: str) -> HttpResponse:
    edit = get_object_or_404(PayloadEdit, pk=edit_id, exception_id=pk)
    form = forms.DecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    error = notice = ""
    try:
        if decision == "approve":
            decided = services.payload_edit_approve(edit_id=edit.pk, user=request.user, note=note)
            if decided.status == PayloadEdit.Status.SUPERSEDED:
                error = f"Edit #{edit.pk} is superseded, not applied. {decided.decision_note}"
            else:
                notice = f"Edit #{edit.pk} approved, applied, and the step retried."
        elif decision == "reject":
            services.payload_edit_reject(edit_id=edit.pk, user=request.user, note=note)
            notice = f"Edit #{edit.pk} rejected; the original payload stays in use."
        else:
            return HttpResponseBadRequest("Decide approve or reject.")
    except ValidationError as refusal:
        error = _errors(refusal)
    except PermissionDenied:
        raise
    if request.htmx:
        response = render(request, "monitoring/exception_detail.html#actions", _detail_context(request, _get_exception(pk), error=error, notice=notice))
        if not error:
            trigger_client_event(response, "exceptionsChanged")
        return response
    (messages.error if error else messages.success)(request, error or notice)
    return redirect(reverse("monitoring:exception_detail", args=[pk]) + "#action-edit")


# --- customer match review ------------------------------------------------------------------------------
@portal_page(DECIDE)
@require_POST
def exception_customer_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    """Merge into / take the owner's value / keep separate / unmerge, from the review panel."""
    exc = _get_exception(pk)
    form = forms.CustomerDecisionForm(request.POST)
    form.is_valid()
    data = form.cleaned_data
    error = notice = ""
    try:
        if decision == "unmerge":
            services.customer_unmerge(exception_id=exc.pk, user=request.user, note=data.get("note", ""))
            notice = "Unmerged: the two customers are separate again, each with its own references and documents."
        elif decision in services.CUSTOMER_DECISIONS:
            match = services.customer_match_decide(
                exception_id=exc.pk, user=request.user, decision=decision, survivor=data.get("survivor") or "candidate", note=data.get("note", "")
            )
            notice = exc_notice(match)
        else:
            return HttpResponseBadRequest("Decide merge, owner, separate or unmerge.")
    except ValidationError as refusal:
        error = _errors(refusal)
    if request.htmx:
        context = _detail_context(request, _get_exception(pk), error=error, notice=notice, failed_action="review" if error else "")
        response = render(request, "monitoring/exception_detail.html#review", context)
        if not error:
            trigger_client_event(response, "exceptionsChanged")
        return response
    (messages.error if error else messages.success)(request, error or notice)
    return redirect(reverse("monitoring:exception_detail", args=[pk]) + "#review")


def exc_notice(match) -> str:
    if match.decision == match.Decision.KEPT_SEPARATE:
        return "Kept separate. The waiting flows go on with their own customer."
    return "Merged: one customer with both records' references. The waiting flows go on with it; Unmerge undoes it."


# --- bulk retry --------------------------------------------------------------------------------------
@portal_page(ACT)
def exception_bulk_retry(request: HttpRequest) -> HttpResponse:
    """GET: the dry run (exact count, idempotency keys, side effects). POST: start the job."""
    params = request.GET if request.method == "GET" else QueryDict(request.POST.get("query", ""))
    filters = ExceptionFilterSet(params, request=request)
    if request.method == "POST":
        form = forms.BulkRetryForm(request.POST)
        expected = form.cleaned_data.get("expected_total") if form.is_valid() else None
        try:
            job = services.bulk_retry_start(user=request.user, filters=filters, expected_total=expected)
        except ValidationError as refusal:
            error = _errors(refusal)
            if request.htmx:
                standalone = request.htmx.target == "bulk-page"
                ctx = {
                    "preview": sel.bulk_retry_preview(filters=filters),
                    "filters": filters,
                    "error": error,
                    "queue_url": f"{reverse('monitoring:exceptions')}?{filters.querystring()}",
                    "bulk_target": "#bulk-page" if standalone else "#bulk",
                }
                return render(request, f"monitoring/exception_bulk.html#{'bulk-page' if standalone else 'bulk-preview'}", ctx)
            messages.error(request, error)
            return redirect(f"{reverse('monitoring:exception_bulk_retry')}?{filters.querystring()}")
        url = reverse("monitoring:exception_bulk_job", args=[job.pk])
        if request.htmx:
            if request.htmx.target == "bulk-page":
                # the dry-run page becomes the job's page: its heading, its progress, its URL
                context = {"page_title": f"Bulk retry #{job.pk}", "job": job, "queue_url": f"{reverse('monitoring:exceptions')}?{job.query}"}
                response = render(request, "monitoring/exception_bulk.html#bulk-page", context)
                response["HX-Push-Url"] = url
            else:  # the dry run shown inside the queue: its card becomes the job's progress
                response = render(request, "monitoring/exception_bulk.html#bulk-progress", {"job": job})
            trigger_client_event(response, "exceptionsChanged")
            return response
        return redirect(url)
    embedded = bool(request.htmx and not request.htmx.boosted)
    preview = sel.bulk_retry_preview(filters=filters, keys_limit=50 if embedded else sel.BULK_KEYS_SHOWN)
    context = {
        "page_title": "Bulk retry",
        "preview": preview,
        "filters": filters,
        "queue_url": f"{reverse('monitoring:exceptions')}?{filters.querystring()}",
        "bulk_target": "#bulk" if embedded else "#bulk-page",
    }
    return render_region(request, "monitoring/exception_bulk.html", context, "bulk-preview")


@portal_page(VIEW)
def exception_bulk_job(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(BulkJob.objects.select_related("created_by"), pk=job_id)
    if request.method == "POST":
        if not request.user.has_perm(ACT):
            raise PermissionDenied
        try:
            services.bulk_retry_resume(job_id=job.pk, user=request.user)
            messages.success(request, f"Bulk job #{job.pk} sent to the workers again.")
        except ValidationError as refusal:
            messages.error(request, _errors(refusal))
        return redirect("monitoring:exception_bulk_job", job_id=job.pk)
    context = {"page_title": f"Bulk retry #{job.pk}", "job": job, "queue_url": f"{reverse('monitoring:exceptions')}?{job.query}"}
    response = render_region(request, "monitoring/exception_bulk.html", context, "bulk-progress")
    if request.htmx and job.finished:
        response.status_code = HttpResponseStopPolling.status_code
        trigger_client_event(response, "exceptionsChanged")
    return response


# --- saved views -----------------------------------------------------------------------------------------
@portal_page(VIEW)
@require_POST
def saved_view_save(request: HttpRequest) -> HttpResponse:
    form = forms.SavedViewForm(request.POST)
    query = request.POST.get("query", "")
    if not form.is_valid():
        messages.error(request, "Give the view a name (up to 80 characters).")
    else:
        try:
            view = services.saved_view_save(
                user=request.user, name=form.cleaned_data["name"], query=form.cleaned_data["query"], group_id=form.cleaned_data["group"]
            )
            shared = f" and shared it with {view.group.name}" if view.group_id else ""
            messages.success(request, f"Saved the view “{view.name}”{shared}.")
            query = view.query
        except ValidationError as refusal:
            messages.error(request, _errors(refusal))
    url = f"{reverse('monitoring:exceptions')}?{query}" if query else reverse("monitoring:exceptions")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@portal_page(VIEW)
@require_POST
def saved_view_delete(request: HttpRequest, view_id: int) -> HttpResponse:
    view = get_object_or_404(SavedView, pk=view_id)
    try:
        services.saved_view_delete(user=request.user, view_id=view.pk)
        messages.success(request, f"Deleted the view “{view.name}”.")
    except ValidationError as refusal:
        messages.error(request, _errors(refusal))
    return redirect("monitoring:exceptions")
