"""Handing work to Celery, by task name: this module imports no task module, so the engine
below it and the tasks above it stay one-way. Publishing never blocks the caller for long and
never loses work: the row (inbox, flow, outbox) is already in PostgreSQL, and the sweeper
re-sends what a failed publish left behind."""

from __future__ import annotations

import logging
import time

from django.db.models import Q
from django.utils import timezone

from q2c_portal.celery import Queue, TaskName, app
from sync.models import InboxEvent

log = logging.getLogger(__name__)
_broker_down_until = 0.0
BROKER_BACKOFF_SECONDS = 5.0
# a publish_outbox message older than this is stale: the next one (or the sweep) does its work
PUBLISH_OUTBOX_EXPIRES = 300


def publish(task: TaskName, *, args: list, queue: Queue | str, countdown: float | None = None, expires: float | None = None) -> bool:
    """send_task that fails fast (and stays quiet for a few seconds) while the broker is down.

    Everything the message carries is given here (queue, countdown, expires), never taken from
    a task registered in this process, so a message is the same whichever modules are loaded."""
    global _broker_down_until
    name, queue = TaskName(task).value, Queue(queue).value  # a wrong name is a bug, not an outage: raise
    if time.monotonic() < _broker_down_until:
        return False
    try:
        app.send_task(name, args=args, queue=queue, countdown=countdown, expires=expires, retry=False)
    except Exception as exc:  # noqa: BLE001 — kombu/redis raise many kinds; all mean "not sent"
        _broker_down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
        log.warning("broker unavailable, %s left for the sweeper: %s", name, exc)
        return False
    return True


def dispatch_inbox(ids: list[int], queue_for: dict[int, str] | None = None) -> int:
    sent = []
    for inbox_id in ids:
        queue = (queue_for or {}).get(inbox_id, Queue.FLOWS)
        if publish(TaskName.PROCESS_INBOX_EVENT, args=[inbox_id], queue=queue):
            sent.append(inbox_id)
    if sent:
        InboxEvent.objects.filter(pk__in=sent, status=InboxEvent.Status.RECEIVED).update(status=InboxEvent.Status.DISPATCHED, dispatched_at=timezone.now())
    return len(sent)


def dispatch_flow(flow_run_id: int, *, queue: str = Queue.FLOWS, countdown: float | None = None) -> bool:
    return publish(TaskName.RUN_FLOW, args=[flow_run_id], queue=queue, countdown=countdown)


def dispatch_cancel(flow_run_id: int, *, countdown: float | None = None) -> bool:
    """Carry out the cancel stored on the flow (FlowRun.cancel_requested_at)."""
    return publish(TaskName.CANCEL_FLOW, args=[flow_run_id], queue=Queue.FLOWS, countdown=countdown)


def dispatch_outbox() -> bool:
    return publish(TaskName.PUBLISH_OUTBOX, args=[], queue=Queue.STATUS, expires=PUBLISH_OUTBOX_EXPIRES)


def inbox_queue(event_type: str) -> Queue:
    return Queue.USAGE if event_type.startswith("usage.") else Queue.FLOWS


def undispatched_inbox(older_than_seconds: float = 10, limit: int = 1000) -> list[tuple[int, str]]:
    """Rows whose dispatch was lost (broker down at commit) or whose message was lost."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stale = Q(status=InboxEvent.Status.RECEIVED, received_at__lt=cutoff) | Q(
        status=InboxEvent.Status.DISPATCHED, dispatched_at__lt=timezone.now() - timezone.timedelta(minutes=10)
    )
    return list(InboxEvent.objects.filter(stale).order_by("received_at").values_list("pk", "event_type")[:limit])
