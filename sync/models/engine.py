"""The sync engine's durable state: inbox, flow runs and steps, exceptions, outbox, audit.

Tables are the work queues (healthchecks style): a Celery message only says "look at
row N"; if the message is lost, a sweeper finds the row again.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex, GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from .canonical import MoneyField


class FlowType(models.TextChoices):
    CUSTOMER_SYNC = "customer_sync", "Customer sync"
    ORDER_ACTIVATION = "order_activation", "Order activation"
    AMENDMENT = "amendment", "Amendment"
    RENEWAL = "renewal", "Renewal"
    CANCELLATION = "cancellation", "Cancellation"
    INVOICE_POSTING = "invoice_posting", "Invoice posting"
    PAYMENT_STATUS = "payment_status", "Payment status"
    USAGE_CLOSE = "usage_close", "Usage close"
    CREDIT_MEMO = "credit_memo", "Credit memo"


class ErrorClass(models.TextChoices):
    VALIDATION = "validation"
    MAPPING = "mapping"
    AUTH = "auth"
    RATE_LIMIT = "rate_limit", "rate limit"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    CONFLICT = "conflict"
    NOT_FOUND = "not_found", "not found"
    DUPLICATE = "duplicate"
    RECONCILIATION = "reconciliation"
    PARKED = "parked", "parked too long"
    MISSING = "missing", "missing event"


TRANSIENT_ERROR_CLASSES = frozenset({ErrorClass.RATE_LIMIT, ErrorClass.TIMEOUT, ErrorClass.UNAVAILABLE})


class InboxEvent(models.Model):
    """An accepted inbound event. Stored before the 2xx; unique per (source, source_event_id)."""

    class Status(models.TextChoices):
        RECEIVED = "received"  # stored, not yet handed to a worker
        DISPATCHED = "dispatched"  # a Celery message was published
        PROCESSED = "processed"  # routed to its flow(s)
        IGNORED = "ignored"  # no flow handles this event type
        DEAD = "dead", "dead-lettered"  # could not be normalised; replayable

    source = models.CharField(max_length=64)
    source_event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=96)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    correlation_id = models.UUIDField(default=uuid.uuid4)
    envelope = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "source_event_id"], name="uniq_inbox_source_event")]
        indexes = [
            models.Index(fields=["received_at"], name="inbox_pending_idx", condition=Q(status__in=["received", "dispatched"])),
            models.Index(fields=["correlation_id"]),
            models.Index(fields=["event_type", "received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.source_event_id} {self.event_type}"


class FlowRun(models.Model):
    """One execution of a business process (saga) for one business document."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        WAITING = "waiting"  # a step waits for a retry or a paused connector
        PARKED = "parked"  # prerequisite not met yet (out-of-order arrival)
        FAILED = "failed"  # a step failed for good; an exception is open
        COMPLETED = "completed"
        CANCELLED = "cancelled"  # cancelled by a user; compensation ran

    ACTIVE_STATUSES = ("pending", "running", "waiting", "parked", "failed")

    flow_type = models.CharField(max_length=32, choices=FlowType.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    correlation_id = models.UUIDField(default=uuid.uuid4)
    inbox_event = models.ForeignKey(InboxEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="flow_runs")
    idempotency_key = models.CharField(max_length=255, unique=True, help_text="flow type + business key: one run per document change")
    # business context
    document_number = models.CharField(max_length=64, blank=True)
    deal_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="the commercial deal this flow belongs to: the CRM order key of its closed-won order (same on the order, its "
        "subscription, invoices, payments, credit memos, amendments, renewals, cancellation and usage); blank when not known",
    )
    account_name = models.CharField(max_length=255, blank=True)
    customer_id = models.UUIDField(null=True, blank=True)
    legal_entity = models.CharField(max_length=32, blank=True)
    amount = MoneyField()
    currency = models.CharField(max_length=3, blank=True)
    amount_reporting = MoneyField(help_text="amount in the reporting currency (order value, ARR change, invoice amount)")
    context = models.JSONField(default=dict, blank=True, help_text="canonical data and ids gathered by the steps")
    # engine timestamps
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    parked_at = models.DateTimeField(null=True, blank=True)
    parked_reason = models.CharField(max_length=255, blank=True)
    waits_for = models.CharField(max_length=128, blank=True, help_text="what a parked flow waits on, e.g. order:ORD-1042")
    lease_expires_at = models.DateTimeField(null=True, blank=True, help_text="a worker holds the flow until then")
    lease_owner = models.CharField(max_length=64, blank=True, help_text="the claim holding the lease: renewal and release compare-and-set on it")
    # an operator's cancel, stored before anything runs: whoever holds the lease honours it between steps
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cancel_reason = models.TextField(blank=True)
    current_step = models.CharField(max_length=64, blank=True)
    # business timestamps (KPIs are computed from these, never typed in)
    business_started_at = models.DateTimeField(help_text="closed_won_at / requested_at / due_at / finalized_at …")
    business_completed_at = models.DateTimeField(null=True, blank=True, help_text="activated_at / completed_at / posted_at …")
    closed_won_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    # SLA
    sla_due_at = models.DateTimeField(null=True, blank=True)
    sla_breached = models.BooleanField(default=False)
    had_exception = models.BooleanField(default=False, help_text="raised at least one exception (first-pass KPI)")
    retries = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["flow_type", "business_started_at"]),
            models.Index(fields=["flow_type", "business_completed_at"]),
            models.Index(fields=["status", "flow_type"]),
            models.Index(fields=["correlation_id"]),
            models.Index(fields=["document_number"]),
            models.Index(fields=["deal_id", "business_started_at"], name="flowrun_deal_idx"),  # a deal's story, in time order
            models.Index(fields=["sla_due_at"], name="flowrun_sla_open_idx", condition=Q(finished_at__isnull=True)),
            models.Index(fields=["waits_for"], name="flowrun_parked_idx", condition=Q(status="parked")),
            models.Index(fields=["lease_expires_at"], name="flowrun_running_idx", condition=Q(status="running")),
            # SLA and KPI windows
            models.Index(fields=["flow_type", "sla_due_at"], name="flowrun_type_sla_due_idx"),
            models.Index(fields=["business_started_at"], name="flowrun_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_flow_type_display()} {self.document_number or self.pk}"

    @property
    def business_duration_seconds(self) -> float | None:
        if self.business_completed_at is None:
            return None
        return (self.business_completed_at - self.business_started_at).total_seconds()


class FlowStep(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        RETRY = "retry", "waiting to retry"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # dead-lettered: an exception is open for it
        SKIPPED = "skipped"
        COMPENSATED = "compensated"

    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="steps")
    seq = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    system = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    idempotency_key = models.CharField(max_length=255)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    request_summary = models.JSONField(default=dict, blank=True)
    response_summary = models.JSONField(default=dict, blank=True)
    error_class = models.CharField(max_length=16, choices=ErrorClass.choices, blank=True)
    error_message = models.TextField(blank=True)
    compensation = models.CharField(max_length=64, blank=True, help_text="the undo action, where the step has side effects")

    class Meta:
        ordering = ["flow_run_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["flow_run", "seq"], name="uniq_step_seq")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="step_retry_due_idx", condition=Q(status="retry")),
            models.Index(fields=["system", "started_at"]),
            models.Index(fields=["started_at"], name="step_retried_idx", condition=Q(attempts__gt=1)),  # retries KPI
        ]

    def __str__(self) -> str:
        return f"{self.flow_run} · {self.name}"


class StepAttempt(models.Model):
    """One attempt at a step, from its start to its end, with the claim that ran it: the evidence that
    no step ever ran twice at once (`manage.py check_double_runs`)."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        RETRY = "retry"
        FAILED = "failed"
        PARKED = "parked"
        CRASHED = "crashed"  # the task died in the step (connection lost, bug outside the step's own handling)
        ABANDONED = "abandoned"  # never finished (worker killed); closed at its lease's end when the next attempt started

    flow_run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="step_attempts")
    step = models.ForeignKey(FlowStep, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    lease_owner = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=128, blank=True, help_text="host:pid of the process that ran it")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, help_text="the lease the attempt ran under, when it started")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)

    class Meta:
        ordering = ["step_id", "started_at"]
        indexes = [models.Index(fields=["step", "started_at"], name="stepattempt_step_idx"), BrinIndex(fields=["started_at"], name="stepattempt_time_brin")]

    def __str__(self) -> str:
        return f"{self.step} #{self.number} {self.outcome}"


class SyncException(models.Model):
    """A failure in business terms. The same failure recurring is one row (fingerprint)."""

    class Status(models.TextChoices):
        OPEN = "open"
        RETRYING = "retrying"
        RESOLVED = "resolved"
        IGNORED = "ignored"

    OPEN_STATUSES = ("open", "retrying")

    fingerprint = models.CharField(max_length=64, help_text="hash of flow run + step + error class + cause")
    cause_key = models.CharField(max_length=64, help_text="hash of system + error class + normalised message: the root-cause group across records")
    flow_run = models.ForeignKey(FlowRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="exceptions")
    step = models.ForeignKey(FlowStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="exceptions")
    inbox_event = models.ForeignKey(InboxEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="exceptions")
    flow_type = models.CharField(max_length=32, choices=FlowType.choices, blank=True)
    step_name = models.CharField(max_length=64, blank=True)
    system = models.CharField(max_length=32)
    error_class = models.CharField(max_length=16, choices=ErrorClass.choices)
    message = models.TextField()
    field = models.CharField(max_length=255, blank=True, help_text="the field the target system named, if any")
    payload = models.JSONField(default=dict, blank=True)
    response = models.JSONField(default=dict, blank=True)
    correlation_id = models.UUIDField(null=True, blank=True)
    account_name = models.CharField(max_length=255, blank=True)
    document_number = models.CharField(max_length=64, blank=True)
    amount = MoneyField()
    currency = models.CharField(max_length=3, blank=True)
    revenue_at_risk = MoneyField(help_text="in the reporting currency")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    retries = models.PositiveIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        permissions = [("act_on_exception", "Can retry, resolve, ignore and assign exceptions")]
        constraints = [
            # one open row per recurring failure; a resolved one may recur as a new row
            models.UniqueConstraint(fields=["fingerprint"], condition=Q(status__in=["open", "retrying"]), name="uniq_open_exception"),
        ]
        indexes = [
            models.Index(fields=["status", "-last_seen"]),
            models.Index(fields=["status", "first_seen"]),
            models.Index(fields=["error_class", "status"]),
            models.Index(fields=["system", "status"]),
            models.Index(fields=["flow_type", "status"]),
            models.Index(fields=["assignee", "status"]),
            models.Index(fields=["cause_key", "status"]),
            models.Index(fields=["-revenue_at_risk"]),
            models.Index(fields=["document_number"]),
            models.Index(fields=["resolved_at"]),
            models.Index(fields=["first_seen"], name="exc_first_seen_idx"),  # KPIs: opened in a window, whatever the status
            # the queue's other filters, sorts and searches (prefix and substring, case-insensitive)
            models.Index(fields=["step_name", "status"], name="exc_step_status_idx"),
            models.Index(fields=["currency", "status"], name="exc_currency_status_idx"),
            models.Index(fields=["amount"], name="exc_amount_idx"),
            models.Index(fields=["retries", "status"], name="exc_retries_status_idx"),
            models.Index(fields=["-occurrences"], name="exc_occurrences_idx"),
            models.Index(OpClass(Upper("account_name"), name="text_pattern_ops"), name="exc_account_prefix_idx"),
            models.Index(OpClass(Upper("document_number"), name="text_pattern_ops"), name="exc_document_prefix_idx"),
            GinIndex(OpClass(Upper("message"), name="gin_trgm_ops"), name="exc_message_trgm_idx"),
        ]

    def __str__(self) -> str:
        return f"[{self.error_class}] {self.document_number or self.flow_type}: {self.message[:60]}"


class ExceptionComment(models.Model):
    exception = models.ForeignKey(SyncException, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]


class OutboxMessage(models.Model):
    """Written in the same transaction as the state change; a worker publishes it."""

    class Topic(models.TextChoices):
        CRM_STATUS = "crm.status", "CRM status write-back"
        ANALYTICS = "analytics", "Analytics event"

    topic = models.CharField(max_length=32, choices=Topic.choices)
    key = models.CharField(max_length=255, help_text="idempotency key of the publish")
    payload = models.JSONField()
    correlation_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failed_at = models.DateTimeField(null=True, blank=True, help_text="refused for good by the target; an exception is open")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["topic", "key"], name="uniq_outbox_key")]
        indexes = [models.Index(fields=["created_at"], name="outbox_unpublished_idx", condition=Q(published_at__isnull=True, failed_at__isnull=True))]


class AuditEntry(models.Model):
    """Append-only (a database trigger refuses UPDATE and DELETE): who/what, when, before → after."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # no FK constraint: deleting a user must not rewrite history; actor_label keeps the name
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    actor_label = models.CharField(max_length=64, default="engine", help_text="'engine', 'beat', or the username")
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64)
    action = models.CharField(max_length=64)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)
    correlation_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["object_type", "object_id", "at"]), models.Index(fields=["correlation_id"])]
        verbose_name_plural = "audit entries"


class ConnectorState(models.Model):
    """Per-connector health: circuit breaker, last success, pull watermarks."""

    class Circuit(models.TextChoices):
        CLOSED = "closed", "closed (healthy)"
        OPEN = "open", "open (paused)"
        HALF_OPEN = "half_open", "half-open (probing)"

    system = models.CharField(max_length=32, unique=True)
    circuit = models.CharField(max_length=16, choices=Circuit.choices, default=Circuit.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="when the circuit last closed after being open (the outage ended)")
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    watermarks = models.JSONField(default=dict, blank=True, help_text="object type → last seen change timestamp")

    def __str__(self) -> str:
        return f"{self.system} ({self.circuit})"


class ConnectorCall(models.Model):
    """One outbound call: the connectors page's request rate, error rate and latency."""

    system = models.CharField(max_length=32)
    operation = models.CharField(max_length=96)
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=16, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["system", "at"]),
            # the connectors page reads the last hour(s) of all systems: a BRIN on the append-only
            # time column finds them without a btree's write cost (3M rows: 170 ms → a few ms)
            BrinIndex(fields=["at"], name="connectorcall_at_brin", autosummarize=True),
        ]
