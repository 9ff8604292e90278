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
app.autodiscover_tasks(["monitoring.exceptions"])  # the bulk-retry job (monitoring/exceptions/tasks.py)


@app.task(name="q2c.ping", queue=Queue.STATUS.value)
def ping(value: str = "pong") -> str:
    """Round-trip probe used by the test suite and by operators (`celery call q2c.ping`)."""
    return value


# --- beat: every periodic job, in one place ------------------------------------------------
# Each entry names its queue through the task and sets `expires` so a backlog after an
# outage does not run stale copies. The DatabaseScheduler syncs these into the admin.
app.conf.beat_schedule = {
    # re-dispatch work a lost message or a broker outage left behind (inbox, due retries, leases, outbox)
    "sweep": {"task": "sync.sweep", "schedule": 15.0, "options": {"expires": 14}},
    # publish CRM status write-backs and analytics events waiting in the outbox
    "publish-outbox": {"task": "sync.publish_outbox", "schedule": 10.0, "options": {"expires": 9}},
    # pull path: changes since the watermark, so nothing depends on webhooks alone
    "poll-salesforce-orders": {"task": "sync.poll_changes", "schedule": 60.0, "args": ["salesforce", "Order"], "options": {"expires": 55}},
    "poll-netsuite-invoices": {"task": "sync.poll_changes", "schedule": 120.0, "args": ["netsuite", "invoice"], "options": {"expires": 110}},
    # connector call records past their retention (CONNECTOR_CALL_RETENTION_DAYS)
    "purge-connector-calls": {"task": "sync.purge_connector_calls", "schedule": 3600.0, "options": {"expires": 3000}},
}

try:  # monitoring's schedules (SLA marking, missing events, alerts) live beside their code
    from monitoring.schedules import BEAT_SCHEDULE as _MONITORING_SCHEDULE
except ImportError:  # pragma: no cover
    _MONITORING_SCHEDULE = {}
app.conf.beat_schedule.update(_MONITORING_SCHEDULE)
