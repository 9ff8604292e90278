"""Services on exceptions: the actions people take in the queue. Each is audited."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .audit import audit_record
from .models import ExceptionComment, SyncException


def _snapshot(exc: SyncException) -> dict:
    return {"status": exc.status, "assignee": exc.assignee.get_username() if exc.assignee_id else None}


def _locked(exception_id: int) -> SyncException:
    return SyncException.objects.select_for_update(of=("self",)).select_related("assignee").get(pk=exception_id)


@transaction.atomic
def exception_resolve(*, exception_id: int, user, note: str) -> SyncException:
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say how it was resolved, so the next person knows."})
    exc = _locked(exception_id)
    before = _snapshot(exc)
    exc.status, exc.resolved_at, exc.resolution_note = SyncException.Status.RESOLVED, timezone.now(), note
    exc.save(update_fields=["status", "resolved_at", "resolution_note"])
    audit_record(object_type="exception", object_id=exc.pk, action="resolve", before=before, after=_snapshot(exc), user=user, note=note, correlation_id=exc.correlation_id)
    return exc


@transaction.atomic
def exception_ignore(*, exception_id: int, user, reason: str) -> SyncException:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why this can be ignored."})
    exc = _locked(exception_id)
    before = _snapshot(exc)
    exc.status, exc.resolved_at, exc.resolution_note = SyncException.Status.IGNORED, timezone.now(), reason
    exc.save(update_fields=["status", "resolved_at", "resolution_note"])
    audit_record(object_type="exception", object_id=exc.pk, action="ignore", before=before, after=_snapshot(exc), user=user, note=reason, correlation_id=exc.correlation_id)
    return exc


@transaction.atomic
def exception_assign(*, exception_id: int, user, assignee_username: str) -> SyncException:
    exc = _locked(exception_id)
    before = _snapshot(exc)
    if assignee_username:
        try:
            exc.assignee = get_user_model().objects.get(username=assignee_username, is_active=True)
        except get_user_model().DoesNotExist:
            raise ValidationError({"assignee": f"No active user called {assignee_username!r}."}) from None
    else:
        exc.assignee = None
    exc.save(update_fields=["assignee"])
    audit_record(object_type="exception", object_id=exc.pk, action="assign", before=before, after=_snapshot(exc), user=user, correlation_id=exc.correlation_id)
    return exc


@transaction.atomic
def exception_comment(*, exception_id: int, user, text: str) -> SyncException:
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "A comment cannot be empty."})
    exc = _locked(exception_id)
    ExceptionComment.objects.create(exception=exc, author=user, text=text)
    audit_record(object_type="exception", object_id=exc.pk, action="comment", user=user, note=text, correlation_id=exc.correlation_id)
    return exc


def exception_retry(*, exception_id: int, user) -> SyncException:
    """Re-queue the failed step with its original idempotency key."""
    from .engine.runner import step_retry

    with transaction.atomic():
        exc = _locked(exception_id)
        if exc.status not in SyncException.OPEN_STATUSES:
            raise ValidationError({"status": f"Only open exceptions can be retried; this one is {exc.status}."})
        if exc.step_id is None:
            raise ValidationError({"step": "This exception has no step to retry (resolve it once the systems agree)."})
        before = _snapshot(exc)
        exc.status = SyncException.Status.RETRYING
        exc.retries += 1
        exc.save(update_fields=["status", "retries"])
        audit_record(object_type="exception", object_id=exc.pk, action="retry", before=before, after=_snapshot(exc), user=user, correlation_id=exc.correlation_id)
        step_retry(step_id=exc.step_id, actor=user)
    return exc
