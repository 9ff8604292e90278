"""The Celery app, its queues, task routes and the beat schedule — all in one place."""

from __future__ import annotations

import enum
import os

from celery import Celery
from kombu import Queue as KombuQueue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "q2c_portal.settings")


class Queue(str, enum.Enum):
    """Every task names one of these. Split by kind of work so each scales alone."""

    FLOWS = "flows"  # financial flow steps (orders, amendments, invoices, payments, credit memos)
    USAGE = "usage"  # high-volume usage aggregation, kept apart from financial work
    STATUS = "status"  # outbox publishing and status write-backs to the CRM
    RECON = "recon"  # reconciliation, SLA sweeps, missing-event detection, polling


app = Celery("q2c_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [KombuQueue(q.value, routing_key=q.value) for q in Queue]
app.conf.task_default_queue = Queue.FLOWS.value
app.autodiscover_tasks()


@app.task(name="q2c.ping", queue=Queue.STATUS.value)
def ping(value: str = "pong") -> str:
    """Round-trip probe used by the test suite and by operators (`celery call q2c.ping`)."""
    return value
