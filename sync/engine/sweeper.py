"""The sweeper: re-send what a lost message or a broker outage left behind. Safe to run any time.

Every piece of work is a row in PostgreSQL before its Celery message is sent, so a message that
never left (broker down at commit) or was lost is found here by its row and sent again.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from sync.dispatch import dispatch_cancel, dispatch_flow, dispatch_inbox, dispatch_outbox, inbox_queue, queued, undispatched_inbox
from sync.flows.registry import flow_for
from sync.models import ErrorClass, FlowRun, FlowStep, OutboxMessage, SyncException

from .exceptions import open_exception
from .runner import CANCELLABLE, PARK_LIMIT


def sweep_inbox(inbox_grace_seconds: float = 5) -> int:
    """Accepted events never sent (broker down) or whose message was lost: beat runs this every few
    seconds, so they are on their way within seconds of the broker's return."""
    rows = undispatched_inbox(older_than_seconds=inbox_grace_seconds)
    return dispatch_inbox([pk for pk, _ in rows], {pk: inbox_queue(t) for pk, t in rows})


def sweep(inbox_grace_seconds: float = 10) -> dict:
    now = timezone.now()
    stats = {}
    stats["inbox"] = sweep_inbox(inbox_grace_seconds)
    due = (
        FlowRun.objects.filter(
            Q(status=FlowRun.Status.WAITING, steps__status=FlowStep.Status.RETRY, steps__next_attempt_at__lte=now - timedelta(seconds=5))
            | Q(status=FlowRun.Status.PENDING, created_at__lt=now - timedelta(seconds=30))
            | Q(status=FlowRun.Status.RUNNING, lease_expires_at__lt=now)
        )
        .values_list("pk", "flow_type")
        .distinct()[:500]
    )
    # one message per due item: a flow whose message still waits in the broker is not sent again
    due = list(due)
    waiting = queued("flow", [pk for pk, _ in due])
    stats["flows"] = sum(dispatch_flow(pk, queue=flow_for(ft).queue) for pk, ft in due if pk not in waiting)
    # cancels asked for whose message was lost (broker down) and that nobody holds; a flow whose undo
    # itself failed waits for the operator (its compensation exception is open)
    cancels = (
        FlowRun.objects.filter(cancel_requested_at__lt=now - timedelta(seconds=10), status__in=CANCELLABLE)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .exclude(exceptions__status__in=SyncException.OPEN_STATUSES, exceptions__message__startswith="Compensation of")
        .values_list("pk", flat=True)[:200]
    )
    stats["cancels"] = sum(dispatch_cancel(pk) for pk in cancels)
    if (
        OutboxMessage.objects.filter(published_at__isnull=True, failed_at__isnull=True)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .exists()
    ):
        dispatch_outbox()
    # flows waiting for a customer-match decision already have their review exception open
    parked = FlowRun.objects.filter(status=FlowRun.Status.PARKED, parked_at__lt=now - PARK_LIMIT).exclude(waits_for__startswith="customer-match:")[:200]
    for run in parked:
        open_exception(system="hub", error_class=ErrorClass.PARKED, message=f"Parked for over {PARK_LIMIT}: {run.parked_reason}", flow_run=run)
    stats["parked_too_long"] = len(parked)
    return stats
