"""Handing work to Celery, by task name: this module imports no task module, so the engine
below it and the tasks above it stay one-way. Publishing never blocks the caller for long and
never loses work: the row (inbox, flow, outbox) is already in PostgreSQL, and the sweeper
re-sends what a failed publish left behind."""

from __future__ import annotations

import logging
import time
from functools import cache

import redis
from django.utils import timezone

from q2c_portal.celery import Queue, TaskName, app
from sync.models import InboxEvent

log = logging.getLogger(__name__)
_broker_down_until = 0.0
BROKER_BACKOFF_SECONDS = 5.0
# a publish_outbox message older than this is stale: the next one (or the sweep) does its work
PUBLISH_OUTBOX_EXPIRES = 300
# a queued marker lives this long past the message's countdown: a message not picked up by then is
# taken for lost (the worker that picks a message up clears its marker)
QUEUED_TTL_SECONDS = 600
# a message a worker has taken (received; held until due when it has a countdown): its marker now
# lasts until the message is due plus this. A worker killed before it ran the message — SIGKILL of
# the whole worker, or of a child it had handed the message to — takes the message with it (acked
# as lost, or unacked until the broker's visibility timeout of an hour), and its marker must not
# keep the sweeper away for QUEUED_TTL_SECONDS (issue 17: a flow waited 10 minutes)
RECEIVED_TTL_SECONDS = 30
# an inbox event is re-sent by the sweeper when it was dispatched at least this long ago and its
# marker is gone: a broker that restarted lost its messages and their markers with them
LOST_AFTER_SECONDS = 5.0


# --- queued markers: "a message for this row is in the broker", kept in the broker's own Redis -------
@cache
def _markers(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def _marker_client() -> redis.Redis:
    return _markers(app.conf.broker_url)


def _key(kind: str, pk: int) -> str:
    return f"q2c:queued:{kind}:{pk}"


def mark_queued(kind: str, pk: int, *, countdown: float | None = None) -> None:
    try:
        _marker_client().set(_key(kind, pk), 1, ex=int(QUEUED_TTL_SECONDS + (countdown or 0)))
    except redis.RedisError:  # no marker: the sweeper may send one copy more, never one less
        log.info("could not mark %s %s queued", kind, pk)


def mark_received(kind: str, pk: int, *, due_in: float = 0) -> None:
    """Called in the worker that received the message (celery's task_received): the message is out
    of the broker, held by that worker until it is due (`due_in` seconds) and run."""
    try:
        _marker_client().set(_key(kind, pk), 1, ex=max(1, int(RECEIVED_TTL_SECONDS + max(due_in, 0.0))))
    except redis.RedisError:
        pass


def clear_queued(kind: str, pk: int) -> None:
    """Called by the worker that picked the message up: the row is no longer waiting in the broker."""
    try:
        _marker_client().delete(_key(kind, pk))
    except redis.RedisError:
        pass


def queued(kind: str, pks: list[int]) -> set[int]:
    """Those of `pks` with a live queued marker (none when the broker cannot say: re-send, not lose)."""
    if not pks:
        return set()
    try:
        found = _marker_client().mget([_key(kind, pk) for pk in pks])
    except redis.RedisError:
        return set()
    return {pk for pk, value in zip(pks, found, strict=True) if value is not None}


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
            mark_queued("inbox", inbox_id)
            sent.append(inbox_id)
    if sent:
        InboxEvent.objects.filter(pk__in=sent, status=InboxEvent.Status.RECEIVED).update(status=InboxEvent.Status.DISPATCHED, dispatched_at=timezone.now())
    return len(sent)


def dispatch_flow(flow_run_id: int, *, queue: str = Queue.FLOWS, countdown: float | None = None) -> bool:
    if not publish(TaskName.RUN_FLOW, args=[flow_run_id], queue=queue, countdown=countdown):
        return False
    mark_queued("flow", flow_run_id, countdown=countdown)
    return True


def dispatch_cancel(flow_run_id: int, *, countdown: float | None = None) -> bool:
    """Carry out the cancel stored on the flow (FlowRun.cancel_requested_at)."""
    return publish(TaskName.CANCEL_FLOW, args=[flow_run_id], queue=Queue.FLOWS, countdown=countdown)


def dispatch_outbox() -> bool:
    return publish(TaskName.PUBLISH_OUTBOX, args=[], queue=Queue.STATUS, expires=PUBLISH_OUTBOX_EXPIRES)


def inbox_queue(event_type: str) -> Queue:
    return Queue.USAGE if event_type.startswith("usage.") else Queue.FLOWS


def undispatched_inbox(older_than_seconds: float = 10, limit: int = 1000) -> list[tuple[int, str]]:
    """Rows whose dispatch was lost (broker down at commit) or whose message was lost: dispatched, but
    their queued marker is gone (the broker restarted empty, or nobody picked the message up in time)."""
    now = timezone.now()
    never_sent = InboxEvent.objects.filter(status=InboxEvent.Status.RECEIVED, received_at__lt=now - timezone.timedelta(seconds=older_than_seconds))
    rows = list(never_sent.order_by("received_at").values_list("pk", "event_type")[:limit])
    sent = list(
        InboxEvent.objects.filter(status=InboxEvent.Status.DISPATCHED, dispatched_at__lt=now - timezone.timedelta(seconds=LOST_AFTER_SECONDS))
        .order_by("dispatched_at")
        .values_list("pk", "event_type")[: max(limit - len(rows), 0)]
    )
    waiting = queued("inbox", [pk for pk, _ in sent])
    return rows + [(pk, t) for pk, t in sent if pk not in waiting]
