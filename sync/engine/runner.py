"""The step runner: start flows, run their steps, retry, dead-letter, park, resume, compensate.

State lives in FlowRun/FlowStep rows, so any worker can pick a flow up where another
stopped. A worker holds a flow through a short lease (compare-and-set), renewed before
each step; a worker killed mid-step leaves the step `running` with its idempotency key,
and whoever runs it next repeats it safely (the target call is an upsert or carries the
key). Network calls happen outside transactions.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

from sync.audit import audit_record
from sync.canonical.contracts import upcast
from sync.connectors.errors import ConnectorError, infrastructure_error
from sync.dispatch import clear_queued, dispatch_cancel, dispatch_flow
from sync.flows.base import Flow, Park, ReviewPark, StepContext, StepValidationError
from sync.flows.registry import flow_for, provided
from sync.models import CustomerMatch, ErrorClass, FlowRun, FlowStep, InboxEvent, OutboxMessage, StepAttempt, SyncException
from sync.outbox import outbox_add
from sync.retry import RetryPolicy

from . import circuit
from .exceptions import open_exception, resolve_for_step
from .money import to_reporting

log = logging.getLogger(__name__)

LEASE_SECONDS = settings.SYNC_ENGINE["FLOW_LEASE_SECONDS"]
PARK_LIMIT = timedelta(hours=settings.SYNC_ENGINE["PARK_LIMIT_HOURS"])
WORKER = f"{socket.gethostname()}:{os.getpid()}"[:128]


class FlowBusy(ValidationError):
    """The flow is already being worked on (held lease, retry queued, cancel under way): the operator's
    action would run it twice, so it is refused. A ValidationError, so every page shows its words;
    the API answers it 409."""

    def __init__(self, message: str = "A retry of this flow is already under way."):
        super().__init__({"status": message})
        self.reason = message


class LeaseLost(Exception):
    """This worker's claim on the flow was taken over (its lease ran out): it must write nothing more."""


def system_for(role: str) -> str:
    return "hub" if role == "hub" else settings.CONNECTOR_ROLES[role]


@cache
def _sla_due_at() -> Callable[[str, datetime | None], datetime | None] | None:
    """The SLA due-date function named by settings.SYNC_SLA_DUE_AT (None: no SLA). Loaded on
    first use, not at import: it lives in an app above sync (monitoring) that sync does not import."""
    path = settings.SYNC_SLA_DUE_AT
    return import_string(path) if path else None


def _sla_due(flow_type: str, started_at: datetime | None) -> datetime | None:
    due_at = _sla_due_at()
    return due_at(flow_type, started_at) if due_at is not None else None


# --- starting ------------------------------------------------------------------------------
def flow_start(*, flow: Flow, envelope: dict, inbox_event: InboxEvent | None = None) -> tuple[FlowRun, bool]:
    """Create the run and its steps for a canonical event, once per business key.

    Returns (run, created). The same business event delivered again (another event id,
    a webhook retry, a poll that overlaps a webhook) finds the existing run. The run keeps the
    event as its type's current version (sync/canonical/contracts.py: upcast).
    """
    envelope = upcast(envelope)
    data = envelope["data"]
    key = f"{flow.flow_type}:{flow.business_key(data)}"
    existing = FlowRun.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing, False
    correlation_id = envelope.get("correlation_id") or (inbox_event.correlation_id if inbox_event else None)
    run = FlowRun(flow_type=flow.flow_type, idempotency_key=key, inbox_event=inbox_event, context={"event": envelope, "steps": {}})
    if correlation_id:
        run.correlation_id = correlation_id
    flow.prepare(run, data)
    run.deal_id = flow.deal_of(run, data)
    run.amount_reporting = to_reporting(run.amount, run.currency)
    run.sla_due_at = _sla_due(flow.flow_type, run.business_started_at)
    try:
        with transaction.atomic():
            run.save()
            FlowStep.objects.bulk_create(
                FlowStep(
                    flow_run=run,
                    seq=i,
                    name=s.name,
                    system=system_for(s.role),
                    idempotency_key=f"q2c-{run.idempotency_key}:{s.name}"[:255],
                    compensation=s.compensation_label,
                )
                for i, s in enumerate(flow.steps, start=1)
            )
            audit_record(
                object_type="flow",
                object_id=run.pk,
                action="start",
                after={"status": run.status, "flow_type": run.flow_type, "document": run.document_number},
                correlation_id=run.correlation_id,
            )
            transaction.on_commit(lambda: dispatch_flow(run.pk, queue=flow.queue))
    except IntegrityError:  # a concurrent worker started it
        return FlowRun.objects.get(idempotency_key=key), False
    return run, True


# --- claiming ------------------------------------------------------------------------------
def _lease_free() -> Q:
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now())


def _claim(run_id: int) -> str | None:
    """Take the flow's lease (compare-and-set: only a free or expired lease is taken). Returns the
    claim's token, which every later renewal and release of this worker compares against."""
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = (
        FlowRun.objects.filter(pk=run_id, status__in=[FlowRun.Status.PENDING, FlowRun.Status.WAITING, FlowRun.Status.RUNNING])
        .filter(_lease_free())
        .update(status=FlowRun.Status.RUNNING, lease_expires_at=now + timedelta(seconds=LEASE_SECONDS), lease_owner=token)
    )
    return token if claimed == 1 else None


def _mine(run: FlowRun):
    """The run's row, as long as this worker's claim still holds it."""
    rows = FlowRun.objects.filter(pk=run.pk)
    return rows.filter(lease_owner=run.lease_owner) if run.lease_owner else rows


def _renew(run: FlowRun, **fields) -> bool:
    """Extend this worker's lease (compare-and-set on the claim's token)."""
    return _mine(run).update(lease_expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS), **fields) == 1


def _set_status(run: FlowRun, status: str, *, note: str = "", **fields) -> None:
    before = run.status
    if _mine(run).update(status=status, **fields) != 1:
        raise LeaseLost(f"flow {run.pk}: lease {run.lease_owner} was taken over")
    run.status = status
    for name, value in fields.items():
        setattr(run, name, value)
    if before != status:
        audit_record(
            object_type="flow",
            object_id=run.pk,
            action=status,
            before={"status": before},
            after={"status": status},
            note=note,
            correlation_id=run.correlation_id,
        )


def _set_step(step: FlowStep, status: str, **fields) -> None:
    before = step.status
    step.status = status
    for name, value in fields.items():
        setattr(step, name, value)
    FlowStep.objects.filter(pk=step.pk).update(status=status, **fields)
    if before != status:
        audit_record(
            object_type="step",
            object_id=step.pk,
            action=status,
            before={"status": before},
            after={"status": status, "step": step.name, "attempts": step.attempts, "error_class": step.error_class},
            correlation_id=step.flow_run.correlation_id if step.flow_run_id else None,
        )


# --- running -------------------------------------------------------------------------------
def flow_run(run_id: int) -> str:
    """Run a flow's remaining steps. Returns the flow's status afterwards (or 'busy')."""
    clear_queued("flow", run_id)  # this message is out of the broker: the sweeper may send another when one is due
    run = FlowRun.objects.filter(pk=run_id).first()
    if run is None or run.status in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED, FlowRun.Status.PARKED, FlowRun.Status.FAILED):
        return run.status if run else "missing"
    token = _claim(run_id)
    if token is None:
        held = FlowRun.objects.filter(pk=run_id).values_list("lease_expires_at", "status").first()
        if held and held[1] == FlowRun.Status.RUNNING and held[0]:
            # someone holds it (or held it and died): look again when the lease runs out
            wait = max(1.0, (held[0] - timezone.now()).total_seconds() + 1)
            dispatch_flow(run_id, queue=flow_for(run.flow_type).queue, countdown=wait)
        return "busy"
    run.refresh_from_db()
    run.lease_owner = token
    try:
        status = _run_claimed(run)
    except LeaseLost as lost:
        log.warning("%s; leaving the flow to its new holder", lost)
        return "busy"
    if status != FlowRun.Status.CANCELLED and _cancel_requested(run_id):
        # a cancel that came while this worker held the lease: its own attempt to claim was refused
        return flow_cancel(flow_run_id=run_id).status
    return status


def _cancel_requested(run_id: int) -> bool:
    return FlowRun.objects.filter(pk=run_id, cancel_requested_at__isnull=False).exclude(status=FlowRun.Status.CANCELLED).exists()


class _CancelInstead(Exception):
    """The flow was asked to stop: compensate instead of going on."""


def _run_claimed(run: FlowRun) -> str:
    flow = flow_for(run.flow_type)
    if run.started_at is None:
        FlowRun.objects.filter(pk=run.pk).update(started_at=timezone.now())
    steps = {s.name: s for s in run.steps.all()}
    for definition in flow.steps:
        step = steps[definition.name]
        if step.status in (FlowStep.Status.SUCCEEDED, FlowStep.Status.SKIPPED):
            continue
        if _cancel_requested(run.pk):  # between steps: a cancel stops the flow before its next side effect
            return _cancel_claimed(run, flow)
        if step.status == FlowStep.Status.FAILED:
            _release(run, FlowRun.Status.FAILED)
            return run.status
        if step.status == FlowStep.Status.RETRY and step.next_attempt_at and step.next_attempt_at > timezone.now():
            _release(run, FlowRun.Status.WAITING)
            dispatch_flow(run.pk, queue=flow.queue, countdown=(step.next_attempt_at - timezone.now()).total_seconds())
            return run.status
        outcome = _run_step(run, step, definition, flow)
        if outcome != FlowStep.Status.SUCCEEDED:
            return outcome
    try:
        _complete(run, flow)
    except _CancelInstead:
        return _cancel_claimed(run, flow)
    return run.status


def _release(run: FlowRun, status: str, **fields) -> None:
    _set_status(run, status, lease_expires_at=None, lease_owner="", **fields)
    run.lease_owner = ""


def _run_step(run: FlowRun, step: FlowStep, definition, flow: Flow) -> str:
    system = step.system
    if system != "hub":
        wait = circuit.circuit_wait_seconds(system)
        if wait > 0:
            # the connector is paused: wait without spending an attempt
            _set_step(
                step,
                FlowStep.Status.RETRY,
                next_attempt_at=timezone.now() + timedelta(seconds=wait),
                error_class=ErrorClass.UNAVAILABLE,
                error_message=f"{system} circuit open: waiting",
            )
            _release(run, FlowRun.Status.WAITING, current_step=step.name)
            dispatch_flow(run.pk, queue=flow.queue, countdown=wait + 0.5)
            return FlowRun.Status.WAITING
    # renew the lease (compare-and-set: a claim taken over runs nothing more) and say where the flow is, in one write
    if not _renew(run, current_step=step.name):
        raise LeaseLost(f"flow {run.pk}: lease {run.lease_owner} was taken over before {step.name}")
    run.current_step = step.name
    step.attempts += 1
    _set_step(step, FlowStep.Status.RUNNING, attempts=step.attempts, started_at=step.started_at or timezone.now(), next_attempt_at=None)
    attempt = _attempt_start(run, step)
    outcome = StepAttempt.Outcome.CRASHED
    try:
        status = _attempt(run, step, definition, flow)
        outcome = _OUTCOMES.get(status, StepAttempt.Outcome.CRASHED)
        return status
    finally:
        _attempt_end(attempt, outcome)


_OUTCOMES = {
    FlowStep.Status.SUCCEEDED: StepAttempt.Outcome.SUCCEEDED,
    FlowRun.Status.WAITING: StepAttempt.Outcome.RETRY,
    FlowRun.Status.FAILED: StepAttempt.Outcome.FAILED,
    FlowRun.Status.PARKED: StepAttempt.Outcome.PARKED,
}


def _attempt_start(run: FlowRun, step: FlowStep) -> StepAttempt:
    """Log the attempt's start. An earlier attempt still open never ended (its worker died): it is
    closed at the end of the lease it ran under, which is when the next claim could first start."""
    now = timezone.now()
    StepAttempt.objects.filter(step=step, finished_at__isnull=True).update(finished_at=Coalesce("lease_expires_at", now), outcome=StepAttempt.Outcome.ABANDONED)
    return StepAttempt.objects.create(
        flow_run_id=run.pk,
        step=step,
        number=step.attempts,
        lease_owner=run.lease_owner,
        worker=WORKER,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=LEASE_SECONDS),
    )


def _attempt_end(attempt: StepAttempt, outcome: str) -> None:
    try:
        StepAttempt.objects.filter(pk=attempt.pk).update(finished_at=timezone.now(), outcome=outcome)
    except Exception:  # noqa: BLE001 — the log must never turn a step's outcome into a crash; the next attempt closes it
        log.warning("could not close step attempt %s", attempt.pk, exc_info=True)


def _attempt(run: FlowRun, step: FlowStep, definition, flow: Flow) -> str:
    system = step.system
    ctx = StepContext(run=run, step=step)
    try:
        result = definition.run(ctx) or {}
    except Park as park:
        return _park(run, step, park)
    except StepValidationError as exc:
        return _fail(run, step, flow, ConnectorError(exc.error_class, exc.message, system=system, field=exc.field))
    except ConnectorError as exc:
        if system != "hub":
            circuit.circuit_record_failure(system, exc.error_class, exc.message)
        policy = definition.retry_policy(system)
        if policy.should_retry(exc, step.attempts):
            return _schedule_retry(run, step, flow, exc, policy)
        return _fail(run, step, flow, exc)
    except LeaseLost:
        raise
    except Exception as exc:  # noqa: BLE001 — a bug must still surface as an exception row, not a lost flow
        infra = infrastructure_error(exc, system=system)
        if infra is not None:
            # the hub's own connection (database, broker, network) dropped, not the data: reconnect, retry
            log.warning("step %s lost a connection, retrying: %s", step.name, infra.message)
            _reconnect()
            policy = definition.retry_policy(system)
            if policy.should_retry(infra, step.attempts) or _within_infra_window(step):
                return _schedule_retry(run, step, flow, infra, policy)
            return _fail(run, step, flow, infra)
        log.exception("step %s crashed", step.name)
        return _fail(run, step, flow, ConnectorError(ErrorClass.MAPPING, f"{type(exc).__name__}: {exc}", system=system))
    if system != "hub":
        circuit.circuit_record_success(system)
    deal = {} if run.deal_id else _deal_found(run, flow)
    with transaction.atomic():
        run.context.setdefault("steps", {})[step.name] = result
        if _mine(run).update(context=run.context, **deal) != 1:
            raise LeaseLost(f"flow {run.pk}: lease {run.lease_owner} was taken over during {step.name}")
        _set_step(
            step,
            FlowStep.Status.SUCCEEDED,
            finished_at=timezone.now(),
            response_summary=_summary(result),
            request_summary=step.request_summary,
            error_class="",
            error_message="",
        )
        resolve_for_step(step)
    return FlowStep.Status.SUCCEEDED


def _reconnect() -> None:
    """Drop database connections a failure may have left broken; the next query opens a fresh one."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


def _deal_found(run: FlowRun, flow: Flow) -> dict:
    """The deal of a run that did not know it at the start, once a step has linked it (a payment
    whose invoice was posted meanwhile): {"deal_id": …} to store, or {}."""
    deal = flow.deal_of(run, run.context["event"]["data"])
    if deal:
        run.deal_id = deal
        return {"deal_id": deal}
    return {}


def _summary(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def _within_infra_window(step: FlowStep) -> bool:
    """A lost connection of the hub's own is retried past the attempt limit for INFRA_RETRY_MINUTES
    after the step first started (the fault harness terminated every connection for 20 s and a
    hub step spent its six fast attempts inside it)."""
    window = timedelta(minutes=settings.SYNC_ENGINE["INFRA_RETRY_MINUTES"])
    return step.started_at is not None and timezone.now() - step.started_at < window


def _schedule_retry(run: FlowRun, step: FlowStep, flow: Flow, exc: ConnectorError, policy: RetryPolicy) -> str:
    delay = policy.delay(step.attempts, exc.retry_after)
    with transaction.atomic():
        _set_step(
            step,
            FlowStep.Status.RETRY,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            error_class=exc.error_class,
            error_message=exc.message[:5000],
            request_summary=step.request_summary,
            response_summary=_response_body(exc),
        )
        FlowRun.objects.filter(pk=run.pk).update(retries=run.retries + 1)
        run.retries += 1
        _release(run, FlowRun.Status.WAITING, current_step=step.name)
    dispatch_flow(run.pk, queue=flow.queue, countdown=delay)
    return FlowRun.Status.WAITING


def _response_body(exc: ConnectorError) -> dict:
    body = exc.response
    if not isinstance(body, dict):
        body = {"body": body}
    return {"status_code": exc.status_code, "code": exc.code, "field": exc.field, **({"body": body} if body else {})}


def _fail(run: FlowRun, step: FlowStep, flow: Flow, exc: ConnectorError) -> str:
    """Permanent error or retries spent: dead-letter the step and open an exception."""
    with transaction.atomic():
        _set_step(
            step,
            FlowStep.Status.FAILED,
            finished_at=timezone.now(),
            error_class=exc.error_class,
            error_message=exc.message[:5000],
            request_summary=step.request_summary,
            response_summary=_response_body(exc),
        )
        _release(run, FlowRun.Status.FAILED, current_step=step.name)
        open_exception(
            system=step.system,
            error_class=exc.error_class,
            message=exc.message,
            flow_run=run,
            step=step,
            field=exc.field,
            payload=step.request_summary or {"data": StepContext(run, step).data},
            response=_response_body(exc),
        )
    return FlowRun.Status.FAILED


def _park(run: FlowRun, step: FlowStep, park: Park) -> str:
    with transaction.atomic():
        _set_step(step, FlowStep.Status.PENDING, attempts=max(step.attempts - 1, 0))
        _release(
            run,
            FlowRun.Status.PARKED,
            parked_at=run.parked_at or timezone.now(),
            parked_reason=park.reason[:255],
            waits_for=park.waits_for[:128],
            current_step=step.name,
        )
        if isinstance(park, ReviewPark) and park.open_exception:
            # the person who decides needs a row in the queue: one per customer match
            exc = open_exception(
                system="hub",
                error_class=park.error_class,
                message=park.message,
                flow_run=run,
                step=step,
                field="account",
                payload=park.payload,
                fingerprint_extra=park.waits_for,
            )
            CustomerMatch.objects.filter(pk=park.match_id, exception__isnull=True).update(exception=exc)
    # the prerequisite may have completed while we were looking: check once more
    if _prerequisite_done(park.waits_for):
        flow_resume_waiting(park.waits_for)
    return FlowRun.Status.PARKED


def _prerequisite_done(key: str) -> bool:
    return provided(key)


def _complete(run: FlowRun, flow: Flow) -> None:
    now = timezone.now()
    with transaction.atomic():
        # the row lock orders completion against a cancel request: one of them finds the other done
        if FlowRun.objects.select_for_update().filter(pk=run.pk, cancel_requested_at__isnull=False).exists():
            raise _CancelInstead
        run.business_completed_at = now
        if flow.on_complete:
            flow.on_complete(run, now)
        breached = bool(run.sla_due_at and run.business_completed_at > run.sla_due_at)
        _release(
            run,
            FlowRun.Status.COMPLETED,
            finished_at=now,
            business_completed_at=run.business_completed_at,
            activated_at=run.activated_at,
            posted_at=run.posted_at,
            sla_breached=breached or run.sla_breached,
            current_step="",
            context=run.context,
        )
        outbox_add(
            topic=OutboxMessage.Topic.ANALYTICS,
            key=f"flow.completed:{run.pk}",
            payload={
                "event": "flow.completed",
                "flow_type": run.flow_type,
                "document": run.document_number,
                "completed_at": now.isoformat(),
                "duration_seconds": run.business_duration_seconds,
                "amount": str(run.amount),
                "currency": run.currency,
            },
            correlation_id=run.correlation_id,
        )
    for key in flow.provides(run.context["event"]["data"]):
        flow_resume_waiting(key)


def flow_resume_waiting(key: str) -> int:
    """Resume flows parked on `key` (e.g. amendments waiting for their order)."""
    resumed = 0
    for run in FlowRun.objects.filter(status=FlowRun.Status.PARKED, waits_for=key):
        if FlowRun.objects.filter(pk=run.pk, status=FlowRun.Status.PARKED).update(status=FlowRun.Status.PENDING, waits_for="", parked_reason=""):
            audit_record(
                object_type="flow",
                object_id=run.pk,
                action="resume",
                before={"status": FlowRun.Status.PARKED},
                after={"status": FlowRun.Status.PENDING},
                note=f"{key} is done",
                correlation_id=run.correlation_id,
            )
            dispatch_flow(run.pk, queue=flow_for(run.flow_type).queue)
            resumed += 1
    return resumed


# --- operator actions ------------------------------------------------------------------------
def step_retry(*, step_id: int, actor=None) -> FlowStep:
    """Re-queue a failed (or waiting) step with its original idempotency key."""
    with transaction.atomic():
        step = FlowStep.objects.select_for_update().select_related("flow_run").get(pk=step_id)
        run = step.flow_run
        if run.status in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED):
            return step
        # the claim: a retry never takes over a held lease nor queues a flow already queued — one
        # compare-and-set on the flow's row decides, however many operators click at once
        claimed = (
            FlowRun.objects.filter(
                pk=run.pk,
                status__in=[FlowRun.Status.FAILED, FlowRun.Status.WAITING, FlowRun.Status.PARKED, FlowRun.Status.RUNNING],
                cancel_requested_at__isnull=True,
            )
            .filter(_lease_free())
            .update(status=FlowRun.Status.PENDING, lease_expires_at=None, lease_owner="", finished_at=None)
        )
        if claimed != 1:
            current = FlowRun.objects.filter(pk=run.pk).values("status", "cancel_requested_at").first() or {}
            if current.get("cancel_requested_at"):
                raise FlowBusy("The flow is being cancelled; it cannot be retried.")
            if current.get("status") in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED):
                raise FlowBusy(f"The flow is already {current['status']}.")
            raise FlowBusy("A retry of this flow is already under way.")
        _set_step(step, FlowStep.Status.PENDING, next_attempt_at=None)
        audit_record(
            object_type="flow",
            object_id=run.pk,
            action="retry_requested",
            before={"status": run.status},
            after={"status": FlowRun.Status.PENDING, "step": step.name},
            user=actor,
            actor_label="operator",
            correlation_id=run.correlation_id,
        )
        queue = flow_for(run.flow_type).queue
        transaction.on_commit(lambda: dispatch_flow(run.pk, queue=queue))
    return step


def step_override_payload(*, step_id: int, payload: dict, actor=None) -> FlowStep:
    """Use an edited payload for this step from now on (the original stays in the event and the audit)."""
    with transaction.atomic():
        step = FlowStep.objects.select_for_update().select_related("flow_run").get(pk=step_id)
        run = FlowRun.objects.select_for_update().get(pk=step.flow_run_id)
        before = (run.context.get("payload_overrides") or {}).get(step.name)
        run.context.setdefault("payload_overrides", {})[step.name] = payload
        FlowRun.objects.filter(pk=run.pk).update(context=run.context)
        audit_record(
            object_type="step",
            object_id=step.pk,
            action="payload_edited",
            before={"payload": before},
            after={"payload": payload},
            user=actor,
            correlation_id=run.correlation_id,
        )
    return step


CANCELLABLE = (FlowRun.Status.PENDING, FlowRun.Status.RUNNING, FlowRun.Status.WAITING, FlowRun.Status.PARKED, FlowRun.Status.FAILED)


def flow_cancel_request(*, flow_run_id: int, actor=None, reason: str = "") -> tuple[FlowRun, bool]:
    """Store an operator's cancel on the flow (audited) before anything runs. Returns (run, new).

    The request is honoured by whoever holds the flow: a worker running a step compensates after it,
    before the next one; a flow nobody holds is compensated by the cancel task; the sweeper re-sends
    a request whose message was lost. A flow that completes first refuses it (ValidationError)."""
    now = timezone.now()
    stored = FlowRun.objects.filter(pk=flow_run_id, cancel_requested_at__isnull=True, status__in=CANCELLABLE).update(
        cancel_requested_at=now, cancel_requested_by=actor if getattr(actor, "pk", None) else None, cancel_reason=reason
    )
    run = FlowRun.objects.get(pk=flow_run_id)
    if not stored:
        if run.status in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED):
            raise ValidationError({"flow": f"The flow is already {run.get_status_display().lower()}; nothing was cancelled."})
        return run, False  # asked before: the same cancel, not a second one
    audit_record(
        object_type="flow",
        object_id=run.pk,
        action="cancel_requested",
        before={"status": run.status},
        after={"status": run.status, "cancel_requested_at": now.isoformat()},
        user=actor if getattr(actor, "pk", None) else None,
        actor_label="operator",
        note=reason,
        correlation_id=run.correlation_id,
    )
    return run, True


def _claim_for_cancel(run_id: int) -> str | None:
    token = uuid.uuid4().hex
    claimed = (
        FlowRun.objects.filter(pk=run_id, status__in=CANCELLABLE, cancel_requested_at__isnull=False)
        .filter(_lease_free())
        .update(lease_expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS), lease_owner=token)
    )
    return token if claimed == 1 else None


def flow_cancel(*, flow_run_id: int, actor=None, reason: str = "") -> FlowRun:
    """Cancel a flow and undo the side effects of its succeeded steps, newest first.

    Never while another worker runs one of its steps: the cancel is stored first, and compensation
    runs only under the flow's lease — here when it is free, else by the lease holder after its step."""
    run = FlowRun.objects.get(pk=flow_run_id)
    if run.status in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED):
        return run
    if run.cancel_requested_at is None:
        try:
            run, _ = flow_cancel_request(flow_run_id=flow_run_id, actor=actor, reason=reason)
        except ValidationError:  # completed meanwhile
            return FlowRun.objects.get(pk=flow_run_id)
    token = _claim_for_cancel(flow_run_id)
    if token is None:
        run.refresh_from_db()
        if run.status not in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED) and run.lease_expires_at:
            # held: its holder compensates after the step; look again when the lease would run out
            dispatch_cancel(run.pk, countdown=max(1.0, (run.lease_expires_at - timezone.now()).total_seconds() + 1))
        return run
    run.refresh_from_db()
    run.lease_owner = token
    try:
        _cancel_claimed(run, flow_for(run.flow_type))
    except LeaseLost as lost:
        log.warning("%s; leaving the cancel to the new holder", lost)
    run.refresh_from_db()
    return run


def _cancel_claimed(run: FlowRun, flow: Flow) -> str:
    """Compensate and cancel a flow this worker holds, as its cancel request asked."""
    run.refresh_from_db(fields=["cancel_requested_at", "cancel_requested_by", "cancel_reason", "status", "context"])
    actor, reason = run.cancel_requested_by, run.cancel_reason
    steps = {s.name: s for s in run.steps.all()}
    for definition in reversed(flow.steps):
        step = steps[definition.name]
        if step.status != FlowStep.Status.SUCCEEDED or definition.compensate is None:
            continue
        try:
            result = definition.compensate(StepContext(run=run, step=step)) or {}
        except ConnectorError as exc:
            open_exception(
                system=step.system,
                error_class=exc.error_class,
                message=f"Compensation of {step.name} failed: {exc.message}",
                flow_run=run,
                step=step,
                field=exc.field,
                response=_response_body(exc),
                fingerprint_extra="compensation",
            )
            # the flow stays failed with its cancel on record; cancelling again from the exception retries the undo
            _release(run, FlowRun.Status.FAILED, current_step=step.name)
            return run.status
        _set_step(step, FlowStep.Status.COMPENSATED, response_summary={**step.response_summary, "compensation": _summary(result)})
        audit_record(
            object_type="step",
            object_id=step.pk,
            action="compensated",
            after={"step": step.name, "compensation": definition.compensation_label, "result": _summary(result)},
            user=actor,
            actor_label="operator" if actor else "engine",
            correlation_id=run.correlation_id,
        )
    with transaction.atomic():
        _release(run, FlowRun.Status.CANCELLED, finished_at=timezone.now(), note=reason)
        for exc in SyncException.objects.filter(flow_run=run, status__in=SyncException.OPEN_STATUSES):
            SyncException.objects.filter(pk=exc.pk).update(
                status=SyncException.Status.RESOLVED, resolved_at=timezone.now(), resolution_note=f"Flow cancelled: {reason}".strip()
            )
            audit_record(
                object_type="exception",
                object_id=exc.pk,
                action="resolve",
                after={"status": SyncException.Status.RESOLVED},
                user=actor,
                actor_label="operator",
                note="flow cancelled; compensation ran",
                correlation_id=run.correlation_id,
            )
    return run.status
