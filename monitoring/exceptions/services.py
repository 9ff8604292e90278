"""Services on exceptions: the actions people take in the queue. Each is audited with the user.

Single actions lock the exception row; bulk retry claims each row with compare-and-set so a
redelivered job never retries a step twice. Slow or external work (flow cancellation with its
compensation, a bulk job) is handed to Celery after the transaction commits. Work is queued by
task name (sync.dispatch), so this module imports no task module.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.http import QueryDict
from django.utils import timezone

from monitoring.models import BulkJob, BulkJobItem, PayloadEdit, SavedView
from q2c_portal.celery import Queue, TaskName
from q2c_portal.redaction import restore_redacted
from sync import dispatch
from sync.audit import audit_record
from sync.customers import merge as customer_merge
from sync.engine.inbox import inbox_replay
from sync.engine.runner import FlowBusy, flow_cancel_request, flow_resume_waiting, step_override_payload, step_retry
from sync.models import CustomerMatch, ExceptionComment, FlowRun, FlowStep, InboxEvent, SyncException

from .filters import ExceptionFilterSet
from .selectors import EDITABLE_ERROR_CLASSES, FINANCIAL_FLOW_TYPES, assignable_users, open_customer_match, step_input

APPROVE_FINANCIAL_EDITS = "monitoring.approve_financial_edits"
DECIDE_CUSTOMER_MATCH = "sync.decide_customer_match"
BULK_RETRY_MAX = 10_000
BULK_QUEUE = Queue.RECON.value  # bulk work runs beside reconciliation and sweeps, away from the financial flow steps


def _snapshot(exc: SyncException) -> dict:
    return {"status": exc.status, "assignee": exc.assignee.get_username() if exc.assignee_id else None}


def _locked(exception_id: int) -> SyncException:
    try:
        return SyncException.objects.select_for_update(of=("self",)).select_related("assignee", "flow_run", "step").get(pk=exception_id)
    except SyncException.DoesNotExist:
        raise ValidationError({"exception": f"Exception #{exception_id} does not exist."}) from None


def _require_open(exc: SyncException, doing: str) -> None:
    if exc.status not in SyncException.OPEN_STATUSES:
        raise ValidationError({"status": f"Only open exceptions can be {doing}; this one is {exc.get_status_display().lower()}."})


def _require_no_open_match(exc: SyncException) -> None:
    if open_customer_match(exc) is not None:
        raise ValidationError({"decision": "Flows wait for this customer-match decision: merge the customers or keep them separate instead."})


@transaction.atomic
def exception_resolve(*, exception_id: int, user, note: str) -> SyncException:
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say how it was resolved, so the next person knows."})
    exc = _locked(exception_id)
    _require_open(exc, "resolved")
    _require_no_open_match(exc)
    before = _snapshot(exc)
    exc.status, exc.resolved_at, exc.resolution_note = SyncException.Status.RESOLVED, timezone.now(), note
    exc.save(update_fields=["status", "resolved_at", "resolution_note"])
    _supersede_pending_edits(exc, user=user, why=f"the exception was resolved by hand ({note})")
    audit_record(
        object_type="exception",
        object_id=exc.pk,
        action="resolve",
        before=before,
        after=_snapshot(exc),
        user=user,
        note=note,
        correlation_id=exc.correlation_id,
    )
    return exc


@transaction.atomic
def exception_ignore(*, exception_id: int, user, reason: str) -> SyncException:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why this can be ignored."})
    exc = _locked(exception_id)
    _require_open(exc, "ignored")
    _require_no_open_match(exc)
    before = _snapshot(exc)
    exc.status, exc.resolved_at, exc.resolution_note = SyncException.Status.IGNORED, timezone.now(), reason
    exc.save(update_fields=["status", "resolved_at", "resolution_note"])
    _supersede_pending_edits(exc, user=user, why=f"the exception was ignored ({reason})")
    audit_record(
        object_type="exception",
        object_id=exc.pk,
        action="ignore",
        before=before,
        after=_snapshot(exc),
        user=user,
        note=reason,
        correlation_id=exc.correlation_id,
    )
    return exc


@transaction.atomic
def exception_assign(*, exception_id: int, user, assignee_username: str) -> SyncException:
    """Assign to an active user whose role may act on exceptions ('' unassigns)."""
    exc = _locked(exception_id)
    before = _snapshot(exc)
    assignee_username = (assignee_username or "").strip()
    if assignee_username:
        assignee = assignable_users().filter(username=assignee_username).first()
        if assignee is None:
            if get_user_model().objects.filter(username=assignee_username, is_active=True).exists():
                raise ValidationError({"assignee": f"{assignee_username} has no role that may act on exceptions."})
            raise ValidationError({"assignee": f"No active user called {assignee_username!r}."})
        exc.assignee = assignee
    else:
        exc.assignee = None
    if before["assignee"] == (exc.assignee.get_username() if exc.assignee else None):
        return exc
    exc.save(update_fields=["assignee"])
    audit_record(object_type="exception", object_id=exc.pk, action="assign", before=before, after=_snapshot(exc), user=user, correlation_id=exc.correlation_id)
    return exc


@transaction.atomic
def exception_comment(*, exception_id: int, user, text: str) -> SyncException:
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "A comment cannot be empty."})
    if len(text) > 5000:
        raise ValidationError({"text": "Keep a comment under 5,000 characters."})
    exc = _locked(exception_id)
    ExceptionComment.objects.create(exception=exc, author=user, text=text)
    audit_record(object_type="exception", object_id=exc.pk, action="comment", user=user, note=text, correlation_id=exc.correlation_id)
    return exc


UNDER_WAY = "a retry is already under way"


def _retry_refusal(exc: SyncException, *, only_open: bool) -> str:
    if only_open and exc.status != SyncException.Status.OPEN:
        return f"it is {exc.get_status_display().lower()}, not open"
    if exc.status not in SyncException.OPEN_STATUSES:
        return f"it is {exc.get_status_display().lower()}"
    if exc.step_id is None:
        return "it has no flow step to retry (fix the data and resolve it, or replay the event)"
    if exc.flow_run_id and exc.flow_run.status in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED):
        return f"its flow is already {exc.flow_run.get_status_display().lower()}"
    if exc.status == SyncException.Status.RETRYING and exc.step.status in (FlowStep.Status.PENDING, FlowStep.Status.RUNNING):
        return UNDER_WAY
    if open_customer_match(exc) is not None:
        return "its flow waits for a customer-match decision (merge or keep separate), then resumes by itself"
    return ""


def exception_retry(*, exception_id: int, user, only_open: bool = False, note: str = "") -> SyncException:
    """Re-queue the failed step with its original idempotency key (the engine dispatches on commit).

    A retry already under way is not requested again, so a double click retries once.
    """
    with transaction.atomic():
        exc = _locked(exception_id)
        refusal = _retry_refusal(exc, only_open=only_open)
        if refusal == UNDER_WAY:
            raise FlowBusy()
        if refusal:
            raise ValidationError({"status": f"Cannot retry: {refusal}."})
        before = _snapshot(exc)
        exc.status = SyncException.Status.RETRYING
        exc.retries += 1
        exc.save(update_fields=["status", "retries"])
        audit_record(
            object_type="exception",
            object_id=exc.pk,
            action="retry",
            before=before,
            after={**_snapshot(exc), "idempotency_key": exc.step.idempotency_key},
            user=user,
            note=note,
            correlation_id=exc.correlation_id,
        )
        step_retry(step_id=exc.step_id, actor=user)
    return exc


def exception_replay(*, exception_id: int, user) -> SyncException:
    """Send a dead-lettered inbound event through processing again.

    The exception is resolved as replayed; if processing fails again the engine opens it anew.
    """
    with transaction.atomic():
        exc = _locked(exception_id)
        _require_open(exc, "replayed")
        event = InboxEvent.objects.filter(pk=exc.inbox_event_id).first() if exc.inbox_event_id else None
        if event is None or event.status != InboxEvent.Status.DEAD:
            raise ValidationError({"inbox_event": "Only a dead-lettered inbound event can be replayed; this exception has none."})
        before = _snapshot(exc)
        inbox_replay(inbox_id=event.pk, actor=user)
        note = f"Replayed inbound event {event.source}:{event.source_event_id}; a new exception opens if it fails again."
        exc.status, exc.resolved_at, exc.resolution_note = SyncException.Status.RESOLVED, timezone.now(), note
        exc.save(update_fields=["status", "resolved_at", "resolution_note"])
        audit_record(
            object_type="exception",
            object_id=exc.pk,
            action="replay",
            before=before,
            after=_snapshot(exc),
            user=user,
            note=note,
            correlation_id=exc.correlation_id,
        )
    return exc


def exception_cancel_flow(*, exception_id: int, user, reason: str, confirmed: bool) -> SyncException:
    """Cancel the exception's flow. The request is stored on the flow first (a worker running one of
    its steps honours it before the next step); a worker runs the compensation (it calls external
    systems). A flow that completes before the request lands refuses it."""
    reason = (reason or "").strip()
    if not confirmed:
        raise ValidationError({"confirm": "Confirm the cancellation: it undoes what the flow already did in each system."})
    if not reason:
        raise ValidationError({"reason": "Say why the flow is cancelled."})
    with transaction.atomic():
        exc = _locked(exception_id)
        run = exc.flow_run
        if run is None:
            raise ValidationError({"flow": "This exception belongs to no flow."})
        if run.status in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED):
            raise ValidationError({"flow": f"The flow is already {run.get_status_display().lower()}."})
        flow_cancel_request(flow_run_id=run.pk, actor=user, reason=reason)
        audit_record(
            object_type="exception",
            object_id=exc.pk,
            action="cancel_flow_requested",
            before=_snapshot(exc),
            user=user,
            note=reason,
            correlation_id=exc.correlation_id,
        )
    # outside the transaction; the request is stored, so a broker that is down only delays it (the sweeper re-sends)
    dispatch.publish(TaskName.CANCEL_FLOW, args=[run.pk, getattr(user, "pk", None), reason], queue=Queue.FLOWS.value)
    return exc


# --- customer match decisions ----------------------------------------------------------------------------
CUSTOMER_DECISIONS = {"merge": "survivor", "owner": "owner", "separate": None}


def _match_of(exc: SyncException) -> CustomerMatch:
    match = CustomerMatch.objects.filter(exception=exc).order_by("-pk").first()
    if match is None:
        raise ValidationError({"match": "This exception is not about a customer match."})
    return match


def _require_decider(user) -> None:
    if not user.has_perm(DECIDE_CUSTOMER_MATCH):
        raise PermissionDenied("Your role may not merge or separate customers (Finance and IT Operations decide customer matches).")


def customer_match_decide(*, exception_id: int, user, decision: str, survivor: str = "candidate", note: str = "") -> CustomerMatch:
    """merge: one customer survives (its values win, blanks filled from the other); owner: merge
    and take each field's value from the system that owns it (OwnershipRule); separate: two
    customers. The exception is resolved and the flows that waited resume (after commit)."""
    _require_decider(user)
    if decision not in CUSTOMER_DECISIONS:
        raise ValidationError({"decision": "Decide merge, owner (merge taking the owner's values) or separate."})
    note = (note or "").strip()
    with transaction.atomic():
        exc = _locked(exception_id)
        match = _match_of(exc)
        if decision == "separate":
            customer_merge.match_keep_separate(match_id=match.pk, user=user, note=note)
            action, text = (
                "customer_kept_separate",
                f"Kept separate: {match.customer.name} and {match.candidate.name if match.candidate else 'the candidate'} are different customers.",
            )
        else:
            record = customer_merge.match_merge(match_id=match.pk, survivor=survivor, rule=CUSTOMER_DECISIONS[decision], user=user, note=note)
            how = "taking each field from the system that owns it" if decision == "owner" else f"{record.survivor.name}'s values kept, blanks filled"
            action, text = "customer_merged", f"Merged {record.merged.name} into {record.survivor.name} ({how}); merge #{record.pk} can be undone."
        before = _snapshot(exc)
        if exc.status in SyncException.OPEN_STATUSES:
            exc.status, exc.resolved_at, exc.resolution_note = SyncException.Status.RESOLVED, timezone.now(), f"{text} {note}".strip()
            exc.save(update_fields=["status", "resolved_at", "resolution_note"])
        audit_record(
            object_type="exception",
            object_id=exc.pk,
            action=action,
            before=before,
            after={**_snapshot(exc), "match": match.pk, "decision": decision},
            user=user,
            note=f"{text} {note}".strip(),
            correlation_id=exc.correlation_id,
        )
        key = match.waits_for
        transaction.on_commit(lambda: flow_resume_waiting(key))
    match.refresh_from_db()
    return match


def customer_unmerge(*, exception_id: int, user, note: str) -> CustomerMatch:
    """Undo the merge this exception's decision made: both customers again, each with its own
    references and documents (those that arrived for the survivor since stay with it)."""
    _require_decider(user)
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say why the merge was wrong, so the next person knows."})
    with transaction.atomic():
        exc = _locked(exception_id)
        match = _match_of(exc)
        record = customer_merge.match_unmerge(match_id=match.pk, user=user, note=note)
        audit_record(
            object_type="exception",
            object_id=exc.pk,
            action="customer_unmerged",
            after={"match": match.pk, "merge": record.pk},
            user=user,
            note=f"Unmerged {record.merged.name} from {record.survivor.name}: {note}",
            correlation_id=exc.correlation_id,
        )
    match.refresh_from_db()
    return match


# --- payload edits -----------------------------------------------------------------------------------
def exception_edit_payload(*, exception_id: int, user, payload, reason: str):
    """Store an edited step input beside the original. Applied (and the step retried) at once,
    except on financial documents, where a second permitted user must approve it first."""
    reason = (reason or "").strip()
    if not isinstance(payload, dict):
        raise ValidationError({"payload": "The payload must be a JSON object."})
    if not reason:
        raise ValidationError({"reason": "Say what you changed and why."})
    with transaction.atomic():
        exc = _locked(exception_id)
        _require_open(exc, "edited")
        if exc.error_class not in EDITABLE_ERROR_CLASSES:
            raise ValidationError({"payload": f"Edit a payload only for mapping or validation errors; this is {exc.error_class}."})
        if exc.step_id is None:
            raise ValidationError({"payload": "This exception has no flow step whose input could be edited."})
        if PayloadEdit.objects.filter(exception=exc, status=PayloadEdit.Status.PENDING).exists():
            raise ValidationError({"payload": "An edit of this payload is already waiting for approval."})
        original = step_input(exc)
        payload = restore_redacted(payload, original)
        if payload == original:
            raise ValidationError({"payload": "The payload is unchanged."})
        financial = exc.flow_type in FINANCIAL_FLOW_TYPES
        edit = PayloadEdit.objects.create(
            exception=exc,
            step_id=exc.step_id,
            original=original,
            payload=payload,
            reason=reason,
            requires_approval=financial,
            status=PayloadEdit.Status.PENDING if financial else PayloadEdit.Status.APPROVED,
            requested_by=user,
            decided_at=None if financial else timezone.now(),
            decision_note="" if financial else "No second approval needed: not a financial document.",
        )
        audit_record(
            object_type="exception",
            object_id=exc.pk,
            action="payload_edit_requested" if financial else "payload_edited",
            before={"payload": original},
            after={"payload": payload, "edit": edit.pk},
            user=user,
            note=reason,
            correlation_id=exc.correlation_id,
        )
        if not financial:
            step_override_payload(step_id=exc.step_id, payload=payload, actor=user)
            exception_retry(exception_id=exc.pk, user=user, note=f"after payload edit #{edit.pk}")
    return edit


def _why_edit_cannot_apply(exc: SyncException, edit: PayloadEdit) -> str:
    """Why a pending edit can no longer be applied (the flow got past the step another way), or ''."""
    if exc.status not in SyncException.OPEN_STATUSES:
        return f"the exception was {exc.get_status_display().lower()} after the edit was made{f' ({exc.resolution_note})' if exc.resolution_note else ''}"
    run = exc.flow_run
    if run is not None and run.status in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED):
        return f"the flow is already {run.get_status_display().lower()}"
    step = FlowStep.objects.filter(pk=edit.step_id).only("status", "name").first() if edit.step_id else None
    if step is None:
        return "the step it edits no longer exists"
    if step.status in (FlowStep.Status.SUCCEEDED, FlowStep.Status.SKIPPED, FlowStep.Status.COMPENSATED):
        return f"step {step.name} is already {step.get_status_display().lower()}"
    return ""


def _supersede(edit: PayloadEdit, *, exc: SyncException, user, why: str) -> PayloadEdit:
    """Take a pending edit out of the pending state, unapplied, saying why (audited)."""
    edit.status, edit.decided_by, edit.decided_at = PayloadEdit.Status.SUPERSEDED, user, timezone.now()
    edit.decision_note = f"Not applied: {why}. The original payload stayed in use; edit again if the data still needs fixing."
    edit.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(
        object_type="exception",
        object_id=exc.pk,
        action="payload_edit_superseded",
        before={"status": PayloadEdit.Status.PENDING},
        after={"edit": edit.pk, "status": edit.status},
        user=user,
        note=edit.decision_note,
        correlation_id=exc.correlation_id,
    )
    return edit


def _supersede_pending_edits(exc: SyncException, *, user, why: str) -> None:
    """An exception closed by hand takes its pending edit with it (no edit waits on a closed exception)."""
    for edit in PayloadEdit.objects.select_for_update().filter(exception=exc, status=PayloadEdit.Status.PENDING):
        _supersede(edit, exc=exc, user=user, why=why)


def payload_edit_approve(*, edit_id: int, user, note: str = ""):
    """A second permitted user approves a financial payload edit: it is applied and the step retried.

    When the flow has since got past the step (retried without the edit, completed, cancelled, the
    exception resolved), the edit cannot apply: it is marked superseded with the reason (status
    `superseded`, audited) instead of failing on "cannot retry" and staying pending for ever."""
    if not user.has_perm(APPROVE_FINANCIAL_EDITS):
        raise PermissionDenied("Your role may not approve edits of financial documents.")
    with transaction.atomic():
        edit = PayloadEdit.objects.select_for_update().filter(pk=edit_id).first()
        if edit is None:
            raise ValidationError({"edit": f"Payload edit #{edit_id} does not exist."})
        if edit.status != PayloadEdit.Status.PENDING:
            raise ValidationError({"edit": f"This edit is already {edit.get_status_display()}."})
        if edit.requested_by_id == user.pk:
            raise ValidationError({"edit": "A second person must approve an edit of a financial document; you made this one."})
        exc = _locked(edit.exception_id)
        why = _why_edit_cannot_apply(exc, edit)
        if why:
            return _supersede(edit, exc=exc, user=user, why=why)
        edit.status, edit.decided_by, edit.decided_at, edit.decision_note = PayloadEdit.Status.APPROVED, user, timezone.now(), (note or "").strip()
        edit.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        step_override_payload(step_id=edit.step_id, payload=edit.payload, actor=user)
        audit_record(
            object_type="exception",
            object_id=exc.pk,
            action="payload_edit_approved",
            before={"payload": edit.original},
            after={"payload": edit.payload, "edit": edit.pk, "requested_by": edit.requested_by.get_username() if edit.requested_by_id else None},
            user=user,
            note=edit.decision_note,
            correlation_id=exc.correlation_id,
        )
        exception_retry(exception_id=exc.pk, user=user, note=f"after approved payload edit #{edit.pk}")
    return edit


def payload_edit_reject(*, edit_id: int, user, note: str = ""):
    """An approver rejects a pending edit, or its author withdraws it. The original stays in use."""
    with transaction.atomic():
        edit = PayloadEdit.objects.select_for_update().filter(pk=edit_id).first()
        if edit is None:
            raise ValidationError({"edit": f"Payload edit #{edit_id} does not exist."})
        if edit.requested_by_id != user.pk and not user.has_perm(APPROVE_FINANCIAL_EDITS):
            raise PermissionDenied("Only an approver or the edit's author may reject it.")
        if edit.status != PayloadEdit.Status.PENDING:
            raise ValidationError({"edit": f"This edit is already {edit.get_status_display()}."})
        edit.status, edit.decided_by, edit.decided_at, edit.decision_note = PayloadEdit.Status.REJECTED, user, timezone.now(), (note or "").strip()
        edit.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        audit_record(
            object_type="exception", object_id=edit.exception_id, action="payload_edit_rejected", after={"edit": edit.pk}, user=user, note=edit.decision_note
        )
    return edit


# --- bulk retry ------------------------------------------------------------------------------------------
def bulk_retry_start(*, user, filters: ExceptionFilterSet, expected_total: int | None = None):
    """Snapshot exactly the rows the filter matches now into a job, and queue it after commit.

    `expected_total` is the count the user saw in the dry run; if the filter now matches a
    different number, nothing starts (the user reviews again).
    """
    ids = list(filters.qs.values_list("pk", flat=True)[: BULK_RETRY_MAX + 1])
    if not ids:
        raise ValidationError({"filter": "No exceptions match this filter; nothing to retry."})
    if len(ids) > BULK_RETRY_MAX:
        raise ValidationError({"filter": f"More than {BULK_RETRY_MAX:,} exceptions match; narrow the filter (e.g. by root cause or system)."})
    if expected_total is not None and expected_total != len(ids):
        raise ValidationError({"expected_total": f"The filter now matches {len(ids):,} exceptions, not {expected_total:,}. Review the dry run again."})
    with transaction.atomic():
        job = BulkJob.objects.create(kind="retry", query=filters.querystring(), description=filters.describe(), created_by=user, total=len(ids))
        BulkJobItem.objects.bulk_create((BulkJobItem(job=job, exception_id=pk) for pk in ids), batch_size=2000)
        audit_record(
            object_type="bulk_job",
            object_id=job.pk,
            action="bulk_retry_requested",
            after={"total": job.total, "query": job.query},
            user=user,
            note=job.description,
        )
        transaction.on_commit(lambda: dispatch.publish(TaskName.BULK_RETRY, args=[job.pk], queue=BULK_QUEUE))
    return job


def bulk_retry_resume(*, job_id: int, user):
    """Send an unfinished job's message again (lost message, broker outage). Safe: items are claimed."""
    job = BulkJob.objects.filter(pk=job_id).first()
    if job is None:
        raise ValidationError({"job": f"Bulk job #{job_id} does not exist."})
    if job.finished:
        raise ValidationError({"job": "This job has finished."})
    if not dispatch.publish(TaskName.BULK_RETRY, args=[job.pk], queue=BULK_QUEUE):
        raise ValidationError({"broker": "The task queue is unavailable; try again in a minute."})
    audit_record(object_type="bulk_job", object_id=job.pk, action="bulk_retry_resumed", user=user)
    return job


def _bulk_retry_item(job, item_id: int, exception_id: int) -> None:
    items, jobs = BulkJobItem.objects, BulkJob.objects
    try:
        with transaction.atomic():
            # the claim: only one delivery of the job message gets this item
            if items.filter(pk=item_id, state=BulkJobItem.State.PENDING).update(state=BulkJobItem.State.RETRIED, processed_at=timezone.now()) != 1:
                return
            try:
                with transaction.atomic():
                    exception_retry(exception_id=exception_id, user=job.created_by, only_open=True, note=f"bulk retry #{job.pk}")
            except ValidationError as refusal:
                items.filter(pk=item_id).update(state=BulkJobItem.State.SKIPPED, note=" ".join(refusal.messages)[:255])
                jobs.filter(pk=job.pk).update(skipped=F("skipped") + 1)
            else:
                jobs.filter(pk=job.pk).update(retried=F("retried") + 1)
    except Exception as error:  # noqa: BLE001 — the claim rolled back with it; record the item as failed, go on
        with transaction.atomic():
            if items.filter(pk=item_id, state=BulkJobItem.State.PENDING).update(
                state=BulkJobItem.State.FAILED, note=f"{type(error).__name__}: {error}"[:255], processed_at=timezone.now()
            ):
                jobs.filter(pk=job.pk).update(failed=F("failed") + 1, last_error=f"exception #{exception_id}: {error}"[:2000])


def bulk_retry_run(*, job_id: int, batch: int = 200):
    """Work through a job's unclaimed items (called by the `monitoring.bulk_retry` task)."""
    job = BulkJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None or job.finished:
        return job
    if BulkJob.objects.filter(pk=job.pk, status=BulkJob.Status.PENDING).update(status=BulkJob.Status.RUNNING, started_at=timezone.now()):
        audit_record(object_type="bulk_job", object_id=job.pk, action="bulk_retry_started", after={"total": job.total})
    last_id = 0
    while True:
        rows = list(
            BulkJobItem.objects.filter(job_id=job.pk, state=BulkJobItem.State.PENDING, pk__gt=last_id).order_by("pk").values_list("pk", "exception_id")[:batch]
        )
        if not rows:
            break
        for item_id, exception_id in rows:
            _bulk_retry_item(job, item_id, exception_id)
        last_id = rows[-1][0]
    all_claimed = not BulkJobItem.objects.filter(job_id=job.pk, state=BulkJobItem.State.PENDING).exists()
    if all_claimed and BulkJob.objects.filter(pk=job.pk).exclude(status__in=[BulkJob.Status.DONE, BulkJob.Status.FAILED]).update(
        status=BulkJob.Status.DONE, finished_at=timezone.now()
    ):
        job.refresh_from_db()
        audit_record(
            object_type="bulk_job", object_id=job.pk, action="bulk_retry_done", after={"retried": job.retried, "skipped": job.skipped, "failed": job.failed}
        )
    job.refresh_from_db()
    return job


# --- saved views ---------------------------------------------------------------------------------------------
def saved_view_save(*, user, name: str, query: str, group_id: int | None = None):
    """Save a named filter for oneself, or shared with one of one's own roles."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the view a name."})
    if len(name) > 80:
        raise ValidationError({"name": "Keep the name under 80 characters."})
    group = None
    if group_id:
        group = user.groups.filter(pk=group_id).first()
        if group is None:
            raise ValidationError({"group": "You can share a view only with a role you have."})
    clean = ExceptionFilterSet(QueryDict(query or "")).querystring()
    view, _ = SavedView.objects.update_or_create(owner=user, name=name, defaults={"query": clean, "group": group})
    return view


def saved_view_delete(*, user, view_id: int) -> None:
    deleted, _ = SavedView.objects.filter(pk=view_id, owner=user).delete()
    if not deleted:
        raise ValidationError({"view": "Only its owner can delete a saved view."})
