"""Handing work to Celery. Publishing never blocks the caller for long and never loses work:
the row (inbox, flow, outbox) is already in PostgreSQL, and the sweeper re-sends what a
failed publish left behind."""

from __future__ import annotations

import logging
import time

from django.db.models import Q
from django.utils import timezone

from sync.models import InboxEvent

log = logging.getLogger(__name__)
_broker_down_until = 0.0
BROKER_BACKOFF_SECONDS = 5.0


def publish(task, *, args: list, queue: str, countdown: float | None = None) -> bool:
    """apply_async that fails fast (and stays quiet for a few seconds) while the broker is down."""
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        return False
    try:
        task.apply_async(args=args, queue=queue, countdown=countdown, retry=False)
    except Exception as exc:  # noqa: BLE001 — kombu/redis raise many kinds; all mean "not sent"
        _broker_down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
        log.warning("broker unavailable, %s left for the sweeper: %s", task.name, exc)
        return False
    return True


def dispatch_inbox(ids: list[int], queue_for: dict[int, str] | None = None) -> int:
    from sync.tasks import process_inbox_event

    sent = []
    for inbox_id in ids:
        queue = (queue_for or {}).get(inbox_id, "flows")
        if publish(process_inbox_event, args=[inbox_id], queue=queue):
            sent.append(inbox_id)
    if sent:
        InboxEvent.objects.filter(pk__in=sent, status=InboxEvent.Status.RECEIVED).update(
            status=InboxEvent.Status.DISPATCHED, dispatched_at=timezone.now()
        )
    return len(sent)


def dispatch_flow(flow_run_id: int, *, queue: str = "flows", countdown: float | None = None) -> bool:
    from sync.tasks import run_flow

    return publish(run_flow, args=[flow_run_id], queue=queue, countdown=countdown)


def dispatch_outbox() -> bool:
    from sync.tasks import publish_outbox

    return publish(publish_outbox, args=[], queue="status")


def inbox_queue(event_type: str) -> str:
    return "usage" if event_type.startswith("usage.") else "flows"


def undispatched_inbox(older_than_seconds: float = 10, limit: int = 1000) -> list[tuple[int, str]]:
    """Rows whose dispatch was lost (broker down at commit) or whose message was lost."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stale = Q(status=InboxEvent.Status.RECEIVED, received_at__lt=cutoff) | Q(
        status=InboxEvent.Status.DISPATCHED, dispatched_at__lt=timezone.now() - timezone.timedelta(minutes=10)
    )
    return list(InboxEvent.objects.filter(stale).order_by("received_at").values_list("pk", "event_type")[:limit])
