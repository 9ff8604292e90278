"""Transactional outbox, the publishing side: status write-backs to the CRM and analytics events.

Messages are written by `sync.outbox.outbox_add` inside the transaction that changes state; a
worker publishes them here. Redis or the CRM being down only delays them.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sync.connectors.errors import ConnectorError
from sync.connectors.registry import crm
from sync.models import FlowStep, OutboxMessage
from sync.retry import outbox_policy

from .exceptions import open_exception

log = logging.getLogger(__name__)
LEASE_SECONDS = 60
ANALYTICS_STREAM = "q2c:analytics"


def _claim(batch: int) -> list[OutboxMessage]:
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True, failed_at__isnull=True)
            .exclude(next_attempt_at__gt=now)
            .order_by("created_at")[:batch]
        )
        if rows:
            OutboxMessage.objects.filter(pk__in=[r.pk for r in rows]).update(attempts=F("attempts") + 1, next_attempt_at=now + timedelta(seconds=LEASE_SECONDS))
    return rows


def _publish(message: OutboxMessage) -> None:
    if message.topic == OutboxMessage.Topic.CRM_STATUS:
        payload = message.payload
        if not payload.get("external_id"):
            return  # the document has no CRM record (e.g. fed through the events API)
        crm().set_status(object_type=payload["object_type"], external_id=payload["external_id"], fields=payload["fields"], idempotency_key=message.key)
    else:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
        try:
            client.xadd(ANALYTICS_STREAM, {"key": message.key, "payload": json.dumps(message.payload, default=str)}, maxlen=100_000, approximate=True)
        finally:
            client.close()


def outbox_publish(batch: int = 50) -> int:
    """Publish due messages; failures are rescheduled with backoff. Returns how many were published."""
    published = 0
    for message in _claim(batch):
        try:
            _publish(message)
        except ConnectorError as exc:
            if outbox_policy().should_retry(exc, message.attempts):
                _reschedule(message, exc)
            else:
                _fail(message, exc)
            continue
        except (redis.RedisError, OSError) as exc:
            _reschedule(message, exc)
            continue
        OutboxMessage.objects.filter(pk=message.pk).update(published_at=timezone.now(), last_error="")
        published += 1
    return published


def _reschedule(message: OutboxMessage, exc: Exception) -> None:
    delay = outbox_policy().delay(message.attempts)
    log.warning("outbox publish failed; retry in %ss: %s", delay, exc, extra={"topic": message.topic, "key": message.key})
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=delay), last_error=str(exc)[:2000])


def _fail(message: OutboxMessage, exc: ConnectorError) -> None:
    """The CRM refused the write-back for good: stop retrying and put it in the exception queue,
    attached to the step that queued it, so a retry from the queue sends it again."""
    step = FlowStep.objects.select_related("flow_run").filter(idempotency_key=message.key).first()
    with transaction.atomic():
        OutboxMessage.objects.filter(pk=message.pk).update(failed_at=timezone.now(), last_error=str(exc)[:2000])
        open_exception(
            system=exc.system or "crm",
            error_class=exc.error_class,
            message=f"Status write-back refused: {exc.message}",
            field=exc.field,
            flow_run=step.flow_run if step else None,
            step=step,
            payload=message.payload,
            response=exc.response if isinstance(exc.response, dict) else {"body": str(exc.response)[:2000]},
            fingerprint_extra=f"outbox:{message.pk}",
        )
