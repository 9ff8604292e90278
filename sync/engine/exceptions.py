"""Opening, grouping and auto-resolving SyncExceptions.

The same failure recurring (same flow run, step, error class and cause) is one row whose
occurrence count grows, as Sentry groups issues. The same *cause* across many documents
(e.g. one unknown SKU on 40 orders) shares a `cause_key`, so it is fixed once and the
whole group retried.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from sync.audit import audit_record
from sync.models import FlowRun, FlowStep, SyncException

from .money import flow_risk, to_reporting

# The parts of a message that change from one occurrence of a cause to the next, in the order
# they are replaced: what is left names the cause (a SKU, a price, a currency, a field).
_VOLATILE = [
    # ISO 8601 timestamps and dates, and clock times
    (r"(?<![\w-])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w-])", 0),
    (r"(?<![\w:])\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?![\w:])", 0),
    # UUIDs, long hex (request ids, hashes)
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
    (r"\b[0-9a-f]{24,}\b", re.I),
    # vendor record ids: Stripe (cus_…, in_…, price_1…: a prefix and 14+ letters/digits) and
    # Salesforce (15 or 18 letters/digits with at least two digits)
    (r"\b[a-z]{2,8}_(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{14,}\b", 0),
    (r"\b(?=[A-Za-z0-9]*\d[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])(?:[A-Za-z0-9]{18}|[A-Za-z0-9]{15})\b", 0),
    # durations ("within 20s", "after 1.5 s")
    (r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ms|s|sec|seconds?|min|minutes?)\b", 0),
    # numbers on their own (amounts, counts, line indexes: lines[2]) — not those inside a name
    # such as SKU-42, price_legacy_2023 or US01
    (r"(?<![\w.-])[-+]?\d+(?:[.,]\d+)*(?![\w-])", 0),
    # long digit runs wherever they stand as a word (ids: INV-2098412)
    (r"\b\d{6,}\b", 0),
]
_VOLATILE_RES = [re.compile(pattern, flags) for pattern, flags in _VOLATILE]
_SPACES = re.compile(r"\s+")


def normalise_message(message: str) -> str:
    """What is left of a message (or a field path) without its volatile parts — ids, numbers,
    amounts, timestamps, durations, line indexes — so the same cause groups across records."""
    text = message or ""
    for pattern in _VOLATILE_RES:
        text = pattern.sub("#", text)
    return _SPACES.sub(" ", text).strip()[:500]


def cause_key_for(system: str, error_class: str, message: str, field: str = "") -> str:
    raw = "|".join([system, error_class, normalise_message(field), normalise_message(message)])
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def fingerprint_for(*, flow_run_id: int | None, step_name: str, error_class: str, cause_key: str, extra: str = "") -> str:
    raw = "|".join([str(flow_run_id or ""), step_name, error_class, cause_key, extra])
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def open_exception(
    *,
    system: str,
    error_class: str,
    message: str,
    flow_run: FlowRun | None = None,
    step: FlowStep | None = None,
    field: str = "",
    payload: dict | None = None,
    response: dict | None = None,
    account_name: str = "",
    document_number: str = "",
    amount: Decimal | None = None,
    currency: str = "",
    inbox_event_id: int | None = None,
    fingerprint_extra: str = "",
    revenue_at_risk: Decimal | None = None,
) -> SyncException:
    """Open an exception, or count one more occurrence of the same open one.

    `revenue_at_risk` defaults to the flow's (money.flow_risk: docs/MONEY.md), or the amount in
    the reporting currency for an exception outside a flow.

    Business context comes from the flow run when one is given. Audited. Safe under
    concurrency: the partial unique index on open fingerprints decides the winner.
    """
    now = timezone.now()
    if flow_run is not None:
        account_name = account_name or flow_run.account_name
        document_number = document_number or flow_run.document_number
        amount = flow_run.amount if amount is None else amount
        currency = currency or flow_run.currency
    # the cause is what went wrong, not which document it went wrong on: "credit exceeds the
    # balance of INV-20984" and "… of INV-20991" are one cause across invoices
    cause_text = message
    for own in (document_number, account_name):
        if own:
            cause_text = cause_text.replace(own, "#")
    cause = cause_key_for(system, error_class, cause_text, field)
    step_name = step.name if step else ""
    fingerprint = fingerprint_for(
        flow_run_id=flow_run.pk if flow_run else None, step_name=step_name, error_class=error_class, cause_key=cause, extra=fingerprint_extra
    )
    amount = amount or Decimal("0")
    if revenue_at_risk is not None:
        at_risk = revenue_at_risk
    elif flow_run is not None:
        at_risk = flow_risk(flow_run, step_name)
    else:
        at_risk = to_reporting(amount, currency)

    existing = SyncException.objects.filter(fingerprint=fingerprint, status__in=SyncException.OPEN_STATUSES)
    updated = existing.update(
        occurrences=F("occurrences") + 1,
        last_seen=now,
        status=SyncException.Status.OPEN,
        message=message[:5000],
        payload=payload or {},
        response=response or {},
    )
    if updated:
        exc = existing.get()
        audit_record(object_type="exception", object_id=exc.pk, action="recurred", after={"occurrences": exc.occurrences}, correlation_id=exc.correlation_id)
        return exc
    try:
        with transaction.atomic():
            exc = SyncException.objects.create(
                fingerprint=fingerprint,
                cause_key=cause,
                flow_run=flow_run,
                step=step,
                inbox_event_id=inbox_event_id,
                flow_type=flow_run.flow_type if flow_run else "",
                step_name=step_name,
                system=system,
                error_class=error_class,
                message=message[:5000],
                field=field[:255],
                payload=payload or {},
                response=response or {},
                correlation_id=flow_run.correlation_id if flow_run else None,
                account_name=account_name[:255],
                document_number=document_number[:64],
                amount=amount,
                currency=currency,
                revenue_at_risk=at_risk,
                first_seen=now,
                last_seen=now,
            )
    except IntegrityError:  # a concurrent worker opened it first: count this one on it
        return open_exception(
            system=system,
            error_class=error_class,
            message=message,
            flow_run=flow_run,
            step=step,
            field=field,
            payload=payload,
            response=response,
            account_name=account_name,
            document_number=document_number,
            amount=amount,
            currency=currency,
            inbox_event_id=inbox_event_id,
            fingerprint_extra=fingerprint_extra,
            revenue_at_risk=revenue_at_risk,
        )
    if flow_run is not None and not flow_run.had_exception:
        FlowRun.objects.filter(pk=flow_run.pk).update(had_exception=True)
        flow_run.had_exception = True
    audit_record(
        object_type="exception",
        object_id=exc.pk,
        action="open",
        after={"status": exc.status, "error_class": error_class, "system": system, "step": step_name},
        note=message[:500],
        correlation_id=exc.correlation_id,
    )
    return exc


def resolve_for_step(step: FlowStep, *, note: str = "The step succeeded on a later attempt.") -> int:
    """Auto-resolve the open exceptions of a step that has now succeeded. Returns how many."""
    now = timezone.now()
    resolved = 0
    for exc in SyncException.objects.filter(step=step, status__in=SyncException.OPEN_STATUSES):
        before = {"status": exc.status}
        if SyncException.objects.filter(pk=exc.pk, status__in=SyncException.OPEN_STATUSES).update(
            status=SyncException.Status.RESOLVED, resolved_at=now, resolution_note=note
        ):
            resolved += 1
            audit_record(
                object_type="exception",
                object_id=exc.pk,
                action="auto_resolve",
                before=before,
                after={"status": SyncException.Status.RESOLVED},
                note=note,
                correlation_id=exc.correlation_id,
            )
    return resolved


def resolve_by_fingerprint(fingerprint: str, *, note: str) -> int:
    """Resolve an open exception that a later check found fixed (reconciliation, missing events)."""
    now = timezone.now()
    resolved = 0
    for exc in SyncException.objects.filter(fingerprint=fingerprint, status__in=SyncException.OPEN_STATUSES):
        if SyncException.objects.filter(pk=exc.pk, status__in=SyncException.OPEN_STATUSES).update(
            status=SyncException.Status.RESOLVED, resolved_at=now, resolution_note=note
        ):
            resolved += 1
            audit_record(
                object_type="exception",
                object_id=exc.pk,
                action="auto_resolve",
                before={"status": exc.status},
                after={"status": SyncException.Status.RESOLVED},
                note=note,
                correlation_id=exc.correlation_id,
            )
    return resolved
