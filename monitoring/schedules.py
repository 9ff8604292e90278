"""Monitoring's Celery beat entries, for the lead to merge into q2c_portal/celery.py.

    from monitoring.schedules import BEAT_SCHEDULE as MONITORING_BEAT
    app.conf.beat_schedule = {**app.conf.beat_schedule, **MONITORING_BEAT}

Each entry expires before the next run, so a backlog (worker down) never piles up sweeps:
the next one does the same work.
"""

from __future__ import annotations

from datetime import timedelta

BEAT_SCHEDULE = {
    # SLA: flip FlowRun.sla_breached on running flows past due (exactly once each), alert on
    # new breaches and on flows past their at-risk share. Every minute: targets are 15+ min.
    "monitoring-sla-sweep": {
        "task": "monitoring.sla_sweep",
        "schedule": timedelta(minutes=1),
        "options": {"queue": "recon", "expires": 50},
    },
    # Missing events: closed-won orders with no ERP sales order past SLA, ended billing periods
    # with no invoice, finalized invoices with no payment past due. Opens/resolves exceptions.
    "monitoring-detect-missing-events": {
        "task": "monitoring.detect_missing_events",
        "schedule": timedelta(minutes=5),
        "options": {"queue": "recon", "expires": 240},
    },
    # Exception spikes: opened in the last 15 min vs the previous day's 15-min average.
    "monitoring-exception-spike-check": {
        "task": "monitoring.exception_spike_check",
        "schedule": timedelta(minutes=5),
        "options": {"queue": "recon", "expires": 240},
    },
    # KPI rollups: roll up the hour that just closed, recompute hours touched by late events.
    # Readers stay exact without it (they read raw rows for anything not rolled up); it only
    # keeps them fast.
    "monitoring-refresh-rollups": {
        "task": "monitoring.refresh_rollups",
        "schedule": timedelta(minutes=1),
        "options": {"queue": "recon", "expires": 50},
    },
}
