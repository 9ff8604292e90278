"""The Celery app, its queues, task routes and the beat schedule — all in one place."""

from __future__ import annotations

import enum
import os

from celery import Celery, signals
from kombu import Queue as KombuQueue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "q2c_portal.settings")


class Queue(str, enum.Enum):
    """Every task names one of these. Split by kind of work so each scales alone."""

    FLOWS = "flows"  # financial flow steps (orders, amendments, invoices, payments, credit memos)
    USAGE = "usage"  # high-volume usage aggregation, kept apart from financial work
    STATUS = "status"  # outbox publishing and status write-backs to the CRM
    RECON = "recon"  # reconciliation, SLA sweeps, missing-event detection, polling


class TaskName(str, enum.Enum):
    """Every task's name, so work is enqueued by name (`app.send_task`) without importing the
    module that defines the task. The values are the names beat rows and queued messages carry:
    never rename one."""

    PING = "q2c.ping"
    # sync/tasks.py
    PROCESS_INBOX_EVENT = "sync.process_inbox_event"
    RUN_FLOW = "sync.run_flow"
    PUBLISH_OUTBOX = "sync.publish_outbox"
    CANCEL_FLOW = "sync.cancel_flow"
    SWEEP = "sync.sweep"
    SWEEP_INBOX = "sync.sweep_inbox"
    POLL_CHANGES = "sync.poll_changes"
    PURGE_CONNECTOR_CALLS = "sync.purge_connector_calls"
    RECONCILE = "sync.reconcile"
    # monitoring
    BULK_RETRY = "monitoring.bulk_retry"
    SLA_SWEEP = "monitoring.sla_sweep"
    DETECT_MISSING_EVENTS = "monitoring.detect_missing_events"
    EXCEPTION_SPIKE_CHECK = "monitoring.exception_spike_check"
    REFRESH_ROLLUPS = "monitoring.refresh_rollups"


# read here, not from settings: this module is imported while settings load (bin/run-demo sets 180)
RECONCILE_EVERY_SECONDS = float(os.environ.get("RECONCILE_EVERY_SECONDS", "3600"))

app = Celery("q2c_portal")


@signals.worker_init.connect
def _refuse_simulator_secrets(**kwargs):
    """A production worker does not start on the simulators' public secrets (q2c_portal/checks.py)."""
    from q2c_portal.checks import refuse_to_start  # at worker start: settings are loaded by then

    refuse_to_start()


app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [KombuQueue(q.value, routing_key=q.value) for q in Queue]
app.conf.task_default_queue = Queue.FLOWS.value
app.autodiscover_tasks()
app.autodiscover_tasks(["monitoring.exceptions"])  # the bulk-retry job (monitoring/exceptions/tasks.py)


@app.task(name=TaskName.PING.value, queue=Queue.STATUS.value)
def ping(value: str = "pong") -> str:
    """Round-trip probe used by the test suite and by operators (`celery call q2c.ping`)."""
    return value


# --- beat: every periodic job, in one place ------------------------------------------------
# Each entry names its task by TaskName (the queue comes with it, see `expires`/`queue`) and
# sets `expires` before its next run, so a backlog after an outage never piles up stale copies:
# the next run does the same work. The DatabaseScheduler syncs these into the admin, keyed by
# the entry's name: never rename one.
app.conf.beat_schedule = {
    # re-dispatch work a lost message or a broker outage left behind (inbox, due retries, leases, outbox)
    "sweep": {"task": TaskName.SWEEP.value, "schedule": 15.0, "options": {"expires": 14}},
    # accepted events never sent or whose message was lost (a broker restart): on their way within seconds
    "sweep-inbox": {"task": TaskName.SWEEP_INBOX.value, "schedule": 5.0, "options": {"expires": 4}},
    # publish CRM status write-backs and analytics events waiting in the outbox
    "publish-outbox": {"task": TaskName.PUBLISH_OUTBOX.value, "schedule": 10.0, "options": {"expires": 9}},
    # pull path: changes since the watermark, so nothing depends on webhooks alone
    "poll-salesforce-orders": {"task": TaskName.POLL_CHANGES.value, "schedule": 60.0, "args": ["salesforce", "Order"], "options": {"expires": 55}},
    "poll-netsuite-invoices": {"task": TaskName.POLL_CHANGES.value, "schedule": 120.0, "args": ["netsuite", "invoice"], "options": {"expires": 110}},
    # connector call records past their retention (CONNECTOR_CALL_RETENTION_DAYS)
    "purge-connector-calls": {"task": TaskName.PURGE_CONNECTOR_CALLS.value, "schedule": 3600.0, "options": {"expires": 3000}},
    # reconciliation: read CRM, billing and ERP through their connectors and compare (sync/reconciliation);
    # every RECONCILE_EVERY_SECONDS (the first one that long after beat first starts)
    "reconcile": {
        "task": TaskName.RECONCILE.value,
        "schedule": RECONCILE_EVERY_SECONDS,
        "options": {"queue": Queue.RECON.value, "expires": RECONCILE_EVERY_SECONDS * 0.9},
    },
    # SLA: flip FlowRun.sla_breached on running flows past due (once each), alert on new breaches
    # and on flows past their at-risk share. Every minute: targets are 15 min and more.
    "monitoring-sla-sweep": {"task": TaskName.SLA_SWEEP.value, "schedule": 60.0, "options": {"queue": Queue.RECON.value, "expires": 50}},
    # missing events: closed-won orders with no ERP sales order past SLA, ended billing periods with
    # no invoice, finalized invoices with no payment past due. Opens and resolves exceptions.
    "monitoring-detect-missing-events": {
        "task": TaskName.DETECT_MISSING_EVENTS.value,
        "schedule": 300.0,
        "options": {"queue": Queue.RECON.value, "expires": 240},
    },
    # exception spikes: opened in the last 15 min vs the previous day's 15-min average
    "monitoring-exception-spike-check": {
        "task": TaskName.EXCEPTION_SPIKE_CHECK.value,
        "schedule": 300.0,
        "options": {"queue": Queue.RECON.value, "expires": 240},
    },
    # KPI rollups: roll up the hour that just closed, recompute hours touched by late events.
    # Readers stay exact without it (they read raw rows for what is not rolled up); it keeps them fast.
    "monitoring-refresh-rollups": {"task": TaskName.REFRESH_ROLLUPS.value, "schedule": 60.0, "options": {"queue": Queue.RECON.value, "expires": 50}},
}
