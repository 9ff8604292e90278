"""Transactional outbox, the write side: status write-backs to the CRM and analytics events.

`outbox_add` is called inside the transaction that changes state, so the message exists
exactly when the change does. A worker publishes it later (sync/engine/outbox_publisher.py);
Redis or the CRM being down only delays it. Flows write here without importing the engine.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from sync.dispatch import dispatch_outbox
from sync.models import OutboxMessage


def outbox_add(*, topic: str, key: str, payload: dict, correlation_id=None) -> None:
    """Add a message (idempotent per topic+key). Must run inside the state change's transaction."""
    try:
        with transaction.atomic():
            OutboxMessage.objects.create(topic=topic, key=key[:255], payload=payload, correlation_id=correlation_id)
    except IntegrityError:
        # queued by an earlier attempt of the same change; if the target refused it for good and
        # someone retries the step from the queue, send it again (with the payload as it is now)
        if not OutboxMessage.objects.filter(topic=topic, key=key[:255], failed_at__isnull=False).update(
            failed_at=None, next_attempt_at=None, attempts=0, payload=payload, last_error=""
        ):
            return
    transaction.on_commit(dispatch_outbox)
