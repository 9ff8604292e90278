"""Monitoring's periodic work: SLA sweep, missing-event detection, exception spikes, KPI rollups.

Thin: each task calls the services of its features and returns a small summary. All run on the
`recon` queue (sweeps and detection, away from financial flow steps); their beat entries are in
q2c_portal/celery.py with every other schedule. (The exception queue's bulk-retry job is in monitoring/exceptions/tasks.py.) Each is idempotent: breaches flip once (compare-and-set UPDATE),
findings open once per fingerprint, alerts are de-duplicated per channel.
"""

from __future__ import annotations

from celery import shared_task

from q2c_portal.celery import Queue

from .alerts.services import alert_missing_events, alert_sla_at_risk, alert_sla_breaches
from .alerts.services import exception_spike_check as spike_check
from .detection.missing_events import detect_missing_events as detect
from .kpis.rollups import refresh
from .sla.services import sla_at_risk_counts, sla_mark_breaches


@shared_task(name="monitoring.sla_sweep", queue=Queue.RECON.value, acks_late=True, reject_on_worker_lost=True)
def sla_sweep() -> dict:
    """Mark running flows past due as breached, alert on them and on flows at risk."""
    breached = sla_mark_breaches()
    at_risk = sla_at_risk_counts()
    alerts = alert_sla_breaches(breached) + alert_sla_at_risk(at_risk)
    return {"breached": len(breached), "at_risk": at_risk, "alerts": len(alerts)}


@shared_task(name="monitoring.detect_missing_events", queue=Queue.RECON.value, acks_late=True, reject_on_worker_lost=True)
def detect_missing_events() -> dict:
    """Open (and later resolve) exceptions for documents that never arrived."""
    result = detect()
    alert_missing_events({kind: r["opened"] for kind, r in result.items()})
    return result


@shared_task(name="monitoring.exception_spike_check", queue=Queue.RECON.value, acks_late=True, reject_on_worker_lost=True)
def exception_spike_check() -> dict:
    return {"alerts": len(spike_check())}


@shared_task(name="monitoring.refresh_rollups", queue=Queue.RECON.value, acks_late=True, reject_on_worker_lost=True)
def refresh_rollups() -> dict:
    """Roll up the hours that just closed and recompute hours touched by late events."""
    return refresh()
