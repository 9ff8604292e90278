"""Alerts on SLA breaches, at-risk flows, exception spikes and missing events.

Pluggable channels (`AlertChannel.kind` → a transport in transports.TRANSPORTS). Every decision
is a `SentAlert` row:

- de-duplicated: the same `dedupe_key` goes to a channel at most once per `dedupe_seconds`
  (a failed delivery does not count, so the next sweep tries again);
- rate-limited: at most `max_per_hour` deliveries per channel; the rest are recorded as
  `rate_limited`, visible on the SLA page, never silently dropped.

The decision is taken under a row lock on the channel (two sweeps cannot both send), the
delivery happens after the transaction (no network call inside it), and its outcome is
written with a compare-and-set on the pending row.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from monitoring.models import AlertChannel, SentAlert
from q2c_portal.redaction import redact, redact_text
from sync.models import FlowType, SyncException

from .transports import TRANSPORTS

log = logging.getLogger(__name__)

SPIKE_WINDOW = timedelta(minutes=15)
SPIKE_FACTOR = 3


def portal_url(path: str) -> str:
    """Absolute link to a screen (settings.PORTAL_BASE_URL)."""
    base = settings.PORTAL_BASE_URL
    return base.rstrip("/") + path


# --- the one entry point -------------------------------------------------------------------------
def alert_send(*, event: str, dedupe_key: str, subject: str, body: str, path: str, payload: dict | None = None, now: datetime | None = None) -> list[SentAlert]:
    """Send one alert to every enabled channel that wants `event`; returns the decisions."""
    now = now or timezone.now()
    # an alert quotes exception messages: nothing secret leaves in it (q2c_portal/redaction.py)
    subject, body, payload = redact_text(subject), redact_text(body), redact(payload or {})
    decisions = []
    for channel in AlertChannel.objects.filter(enabled=True).order_by("pk"):
        if not channel.wants(event):
            continue
        alert = _decide(channel, event=event, dedupe_key=dedupe_key, subject=subject, body=body, url=portal_url(path), payload=payload or {}, now=now)
        if alert.status == SentAlert.Status.PENDING:
            _deliver(channel, alert)
        decisions.append(alert)
    return decisions


def _decide(channel: AlertChannel, *, event, dedupe_key, subject, body, url, payload, now) -> SentAlert:
    with transaction.atomic():
        AlertChannel.objects.select_for_update().filter(pk=channel.pk).first()  # one decision at a time per channel
        recent = SentAlert.objects.filter(channel=channel)
        if recent.filter(
            dedupe_key=dedupe_key, created_at__gt=now - timedelta(seconds=channel.dedupe_seconds), status__in=[SentAlert.Status.PENDING, SentAlert.Status.SENT]
        ).exists():
            status = SentAlert.Status.DUPLICATE
        elif (
            recent.filter(
                created_at__gt=now - timedelta(hours=1), status__in=[SentAlert.Status.PENDING, SentAlert.Status.SENT, SentAlert.Status.FAILED]
            ).count()
            >= channel.max_per_hour
        ):
            status = SentAlert.Status.RATE_LIMITED
        else:
            status = SentAlert.Status.PENDING
        return SentAlert.objects.create(
            channel=channel,
            event=event,
            dedupe_key=dedupe_key[:200],
            subject=subject[:255],
            body=body,
            url=url[:500],
            payload=payload,
            status=status,
            created_at=now,
        )


def _deliver(channel: AlertChannel, alert: SentAlert) -> None:
    try:
        TRANSPORTS[channel.kind](channel, alert)
    except Exception as exc:  # noqa: BLE001 — any transport failure is recorded, the sweep goes on
        log.warning("alert delivery failed", extra={"channel": channel.name, "alert": alert.pk, "error": str(exc)})
        SentAlert.objects.filter(pk=alert.pk, status=SentAlert.Status.PENDING).update(status=SentAlert.Status.FAILED, error=str(exc)[:2000])
        alert.status, alert.error = SentAlert.Status.FAILED, str(exc)
        return
    SentAlert.objects.filter(pk=alert.pk, status=SentAlert.Status.PENDING).update(status=SentAlert.Status.SENT, sent_at=timezone.now())
    alert.status = SentAlert.Status.SENT


# --- what raises alerts ------------------------------------------------------------------------------
def _money(amount: Decimal) -> str:
    return f"{settings.REPORTING_CURRENCY} {amount:,.2f}"


def alert_sla_breaches(breached: list) -> list[SentAlert]:
    """One alert per flow type for the flows a sweep has just marked breached."""
    by_type: dict[str, list] = {}
    for flow in breached:
        by_type.setdefault(flow.flow_type, []).append(flow)
    out = []
    for flow_type, flows in by_type.items():
        label = FlowType(flow_type).label.lower()
        at_risk = sum((Decimal(f.amount_reporting) for f in flows), Decimal(0)).quantize(Decimal("0.01"))
        docs = ", ".join(f.document_number or str(f.id) for f in flows[:10]) + (" …" if len(flows) > 10 else "")
        ids = sorted(f.id for f in flows)
        out += alert_send(
            event=AlertChannel.Event.SLA_BREACH,
            dedupe_key=f"sla_breach:{flow_type}:{hashlib.sha1(str(ids).encode()).hexdigest()[:16]}",
            subject=f"{len(flows)} {label} flow{'s' if len(flows) != 1 else ''} breached the SLA ({_money(at_risk)} at risk)",
            body=f"Past their due time and not finished: {docs}.",
            path=reverse("monitoring:sla") + f"?flow={flow_type}&sla=breached#drill",
            payload={"flow_type": flow_type, "flow_ids": ids[:100], "count": len(flows), "amount_at_risk": str(at_risk)},
        )
    return out


def alert_sla_at_risk(counts: dict[str, int]) -> list[SentAlert]:
    """Per flow type with running flows near their due time (deduped per channel period)."""
    out = []
    for flow_type, n in counts.items():
        if not n:
            continue
        label = FlowType(flow_type).label.lower()
        out += alert_send(
            event=AlertChannel.Event.SLA_AT_RISK,
            dedupe_key=f"sla_at_risk:{flow_type}",
            subject=f"{n} {label} flow{'s' if n != 1 else ''} at risk of breaching the SLA",
            body="Running past the at-risk share of their target.",
            path=reverse("monitoring:sla") + f"?flow={flow_type}&sla=at_risk#drill",
            payload={"flow_type": flow_type, "count": n},
        )
    return out


def exception_spike_check(*, now: datetime | None = None) -> list[SentAlert]:
    """Exceptions opened in the last 15 min against the previous day's 15-min average
    (settings.ALERT_SPIKE_MIN: the fewest that count as a spike)."""
    now = now or timezone.now()
    recent = SyncException.objects.filter(first_seen__gte=now - SPIKE_WINDOW, first_seen__lt=now)
    count = recent.count()
    baseline = SyncException.objects.filter(first_seen__gte=now - timedelta(days=1) - SPIKE_WINDOW, first_seen__lt=now - SPIKE_WINDOW).count() / 96
    if count < max(settings.ALERT_SPIKE_MIN, SPIKE_FACTOR * baseline):
        return []
    top = recent.values("system", "error_class").annotate(n=Count("id")).order_by("-n")[:3]
    causes = "; ".join(f"{t['system']} {t['error_class']} ×{t['n']}" for t in top)
    return alert_send(
        event=AlertChannel.Event.EXCEPTION_SPIKE,
        dedupe_key="exception_spike",
        subject=f"Exception spike: {count} opened in 15 min (usually {baseline:.1f})",
        body=f"Most frequent: {causes}.",
        path=reverse("monitoring:exceptions") + "?sort=-first_seen",
        payload={"count": count, "baseline_per_15min": round(baseline, 2), "top": list(top)},
        now=now,
    )


def alert_missing_events(opened: dict[str, int]) -> list[SentAlert]:
    total = sum(opened.values())
    if not total:
        return []
    parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in opened.items() if n)
    return alert_send(
        event=AlertChannel.Event.MISSING_EVENT,
        dedupe_key=f"missing:{timezone.now():%Y%m%d%H}:{parts}",
        subject=f"{total} expected document{'s' if total != 1 else ''} never arrived",
        body=f"Newly missing: {parts}.",
        path=reverse("monitoring:exceptions") + "?error_class=missing",
        payload=opened,
    )
