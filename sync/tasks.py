"""Celery tasks: thin wrappers that take ids and call the engine. Queues come from q2c_portal.celery.Queue."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from q2c_portal.celery import Queue
from sync.connectors.errors import ConnectorError

log = logging.getLogger(__name__)


@shared_task(bind=True, name="sync.process_inbox_event", queue=Queue.FLOWS.value, acks_late=True, max_retries=8)
def process_inbox_event(self, inbox_id: int) -> str:
    from sync.engine.inbox import inbox_process
    from sync.engine.retry import inbox_policy

    try:
        return inbox_process(inbox_id)
    except ConnectorError as exc:  # transient: the connector was down while normalising
        policy = inbox_policy()
        raise self.retry(exc=exc, countdown=policy.delay(self.request.retries + 1, exc.retry_after), max_retries=policy.max_attempts - 1)


@shared_task(name="sync.run_flow", queue=Queue.FLOWS.value, acks_late=True)
def run_flow(flow_run_id: int) -> str:
    from sync.engine.runner import flow_run

    return flow_run(flow_run_id)


@shared_task(name="sync.publish_outbox", queue=Queue.STATUS.value, acks_late=True, expires=300)
def publish_outbox() -> int:
    from sync.engine.outbox import outbox_publish

    total = 0
    while True:
        published = outbox_publish(batch=50)
        total += published
        if published < 50:
            return total


@shared_task(name="sync.cancel_flow", queue=Queue.FLOWS.value, acks_late=True)
def cancel_flow(flow_run_id: int, user_id: int | None = None, reason: str = "") -> str:
    from django.contrib.auth import get_user_model

    from sync.engine.runner import flow_cancel

    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return flow_cancel(flow_run_id=flow_run_id, actor=user, reason=reason).status


@shared_task(name="sync.sweep", queue=Queue.RECON.value, expires=60)
def sweep(inbox_grace_seconds: float = 10) -> dict:
    """Re-send what a lost message or a broker outage left behind. Safe to run any time."""
    from sync.engine.dispatch import dispatch_flow, dispatch_inbox, dispatch_outbox, inbox_queue, undispatched_inbox
    from sync.engine.exceptions import open_exception
    from sync.engine.runner import PARK_LIMIT
    from sync.flows.registry import flow_for
    from sync.models import ErrorClass, FlowRun, FlowStep, OutboxMessage

    now = timezone.now()
    stats = {}
    rows = undispatched_inbox(older_than_seconds=inbox_grace_seconds)
    stats["inbox"] = dispatch_inbox([pk for pk, _ in rows], {pk: inbox_queue(t) for pk, t in rows})
    due = (
        FlowRun.objects.filter(
            Q(status="waiting", steps__status=FlowStep.Status.RETRY, steps__next_attempt_at__lte=now - timedelta(seconds=5))
            | Q(status="pending", created_at__lt=now - timedelta(seconds=30))
            | Q(status="running", lease_expires_at__lt=now)
        )
        .values_list("pk", "flow_type").distinct()[:500]
    )
    stats["flows"] = sum(dispatch_flow(pk, queue=flow_for(ft).queue) for pk, ft in due)
    if OutboxMessage.objects.filter(published_at__isnull=True, failed_at__isnull=True).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).exists():
        dispatch_outbox()
    parked = FlowRun.objects.filter(status="parked", parked_at__lt=now - PARK_LIMIT)[:200]
    for run in parked:
        open_exception(system="hub", error_class=ErrorClass.PARKED, message=f"Parked for over {PARK_LIMIT}: {run.parked_reason}", flow_run=run)
    stats["parked_too_long"] = len(parked)
    return stats


@shared_task(name="sync.poll_changes", queue=Queue.RECON.value, expires=300)
def poll_changes(system: str, object_type: str) -> int:
    from sync.engine.polling import poll

    return poll(system=system, object_type=object_type)


@shared_task(name="sync.purge_connector_calls", queue=Queue.RECON.value, expires=3600)
def purge_connector_calls() -> int:
    """Connector call records older than CONNECTOR_CALL_RETENTION_DAYS (they feed the connectors
    page, which looks back a week at most). In batches, so no long lock or transaction."""
    from django.conf import settings
    from django.db import connection

    from sync.models import ConnectorCall

    cutoff = timezone.now() - timedelta(days=settings.CONNECTOR_CALL_RETENTION_DAYS)
    table, deleted = ConnectorCall._meta.db_table, 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE at < %s LIMIT 10000)", [cutoff])
            deleted += cursor.rowcount
            if cursor.rowcount < 10000:
                return deleted
