"""Celery tasks: thin wrappers that take ids and call the engine. Names come from
q2c_portal.celery.TaskName (work is enqueued by name, see sync.dispatch), queues from Queue."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task, signals
from celery.utils.time import maybe_iso8601
from django.contrib.auth import get_user_model

from q2c_portal.celery import Queue, TaskName
from sync.connectors.errors import ConnectorError
from sync.dispatch import PUBLISH_OUTBOX_EXPIRES, mark_queued, mark_received
from sync.engine import retention, sweeper
from sync.engine.inbox import inbox_process
from sync.engine.outbox_publisher import outbox_publish
from sync.engine.polling import poll
from sync.engine.runner import flow_cancel, flow_run
from sync.reconciliation import runs
from sync.retry import inbox_policy

log = logging.getLogger(__name__)

# the tasks whose rows carry a queued marker (sync.dispatch), by the kind of row their one argument names
MARKED = {TaskName.PROCESS_INBOX_EVENT.value: "inbox", TaskName.RUN_FLOW.value: "flow"}


@signals.task_received.connect
def _message_received(sender=None, request=None, **kwargs) -> None:
    """In the worker's main process, as a message arrives (before it is held for its countdown or
    handed to a child): its marker now lasts only until it is due plus RECEIVED_TTL_SECONDS, so if
    this worker dies with it the sweeper sends the row again within seconds, not QUEUED_TTL_SECONDS."""
    kind = MARKED.get(getattr(request, "name", ""))
    args = getattr(request, "args", None) or ()
    if kind is None or not args:
        return
    eta = maybe_iso8601(request.eta) if isinstance(getattr(request, "eta", None), str) else getattr(request, "eta", None)
    if isinstance(eta, datetime) and eta.tzinfo is None:
        eta = eta.replace(tzinfo=UTC)  # celery sends UTC (enable_utc)
    due_in = (eta - datetime.now(UTC)).total_seconds() if isinstance(eta, datetime) else 0.0
    try:
        mark_received(kind, int(args[0]), due_in=due_in)
    except (TypeError, ValueError):
        log.warning("%s message with an unexpected argument %r", request.name, args[0])


@shared_task(bind=True, name=TaskName.PROCESS_INBOX_EVENT.value, queue=Queue.FLOWS.value, acks_late=True, max_retries=8)
def process_inbox_event(self, inbox_id: int) -> str:
    try:
        return inbox_process(inbox_id)
    except ConnectorError as exc:  # transient: the connector was down while normalising
        policy = inbox_policy()
        countdown = policy.delay(self.request.retries + 1, exc.retry_after)
        mark_queued("inbox", inbox_id, countdown=countdown)  # the retry is the event's message now: the sweeper leaves it be
        raise self.retry(exc=exc, countdown=countdown, max_retries=policy.max_attempts - 1) from exc


@shared_task(name=TaskName.RUN_FLOW.value, queue=Queue.FLOWS.value, acks_late=True)
def run_flow(flow_run_id: int) -> str:
    return flow_run(flow_run_id)


@shared_task(name=TaskName.PUBLISH_OUTBOX.value, queue=Queue.STATUS.value, acks_late=True, expires=PUBLISH_OUTBOX_EXPIRES)
def publish_outbox() -> int:
    total = 0
    while True:
        published = outbox_publish(batch=50)
        total += published
        if published < 50:
            return total


@shared_task(name=TaskName.CANCEL_FLOW.value, queue=Queue.FLOWS.value, acks_late=True)
def cancel_flow(flow_run_id: int, user_id: int | None = None, reason: str = "") -> str:
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return flow_cancel(flow_run_id=flow_run_id, actor=user, reason=reason).status


@shared_task(name=TaskName.SWEEP.value, queue=Queue.RECON.value, expires=60)
def sweep(inbox_grace_seconds: float = 10) -> dict:
    """Re-send what a lost message or a broker outage left behind. Safe to run any time."""
    return sweeper.sweep(inbox_grace_seconds=inbox_grace_seconds)


@shared_task(name=TaskName.SWEEP_INBOX.value, queue=Queue.RECON.value, expires=10)
def sweep_inbox(inbox_grace_seconds: float = 5) -> int:
    """Send accepted events that were never sent (broker down) or whose message was lost."""
    return sweeper.sweep_inbox(inbox_grace_seconds=inbox_grace_seconds)


@shared_task(name=TaskName.POLL_CHANGES.value, queue=Queue.RECON.value, expires=300)
def poll_changes(system: str, object_type: str) -> int:
    return poll(system=system, object_type=object_type)


@shared_task(name=TaskName.PURGE_CONNECTOR_CALLS.value, queue=Queue.RECON.value, expires=3600)
def purge_connector_calls() -> int:
    """Connector call records older than CONNECTOR_CALL_RETENTION_DAYS, in batches."""
    return retention.purge_connector_calls()


@shared_task(name=TaskName.RECONCILE.value, queue=Queue.RECON.value, expires=3600)
def reconcile(run_id: int | None = None) -> int | None:
    """One reconciliation run: the given (queued by the screen or the API) or, from beat, a new one."""
    if run_id is None:
        return runs.scheduled()
    done = runs.execute(run_id)
    return done.pk if done else None
