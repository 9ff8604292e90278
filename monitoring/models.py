"""Monitoring's own tables: SLA policies and holidays, alert channels and sent alerts, and the
portal's role permissions."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from sync.models import FlowType


class Portal(models.Model):
    """No table: holds the portal's permissions, which the roles (groups) are built from."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_kpis", "View KPI dashboards (overview, orders, amendments, invoices, SLA)"),
            ("view_exceptions", "View the exception queue"),
            ("view_reconciliation", "View reconciliation breaks"),
            ("view_traces", "View flow traces and payloads"),
            ("view_connectors", "View connector health"),
            ("manage_connectors", "Pause, resume and configure connectors"),
            ("manage_sla", "Edit SLA policies"),
            ("approve_financial_edits", "Approve edited payloads on financial documents"),
        ]


class SlaPolicy(models.Model):
    """Target duration per flow type. Defaults from the design; editable by permitted users.

    `monitoring.sla.policies.sla_due_at()` turns a policy into a due time: 24×7 adds the target to the
    start; the business calendar counts only working hours on working days (weekends and
    `SlaHoliday` rows excluded). Inside the month-end close window (the last
    `month_end_days_before` days of a month and the first `month_end_days_after` days of the
    next) the stricter `month_end_target_seconds` applies when set.
    """

    class Calendar(models.TextChoices):
        ALWAYS = "24x7", "24×7"
        BUSINESS = "business", "Business days"

    flow_type = models.CharField(max_length=32, choices=FlowType.choices, unique=True)
    target_seconds = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    objective_pct = models.DecimalField(max_digits=5, decimal_places=2, default=99, validators=[MinValueValidator(0), MaxValueValidator(100)])
    at_risk_pct = models.PositiveSmallIntegerField(default=80, validators=[MinValueValidator(1), MaxValueValidator(100)])
    calendar = models.CharField(max_length=16, choices=Calendar.choices, default=Calendar.ALWAYS)
    business_hours_start = models.TimeField(default=time(9, 0), help_text="business calendar: the working day starts (in the policy's time zone)")
    business_hours_end = models.TimeField(default=time(17, 0), help_text="business calendar: the working day ends")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="IANA zone of the business calendar, e.g. America/New_York")
    month_end_target_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="stricter target in the month-end close window")
    month_end_days_before = models.PositiveSmallIntegerField(default=2, validators=[MaxValueValidator(15)], help_text="close window: last days of the month")
    month_end_days_after = models.PositiveSmallIntegerField(
        default=3, validators=[MaxValueValidator(15)], help_text="close window: first days of the next month"
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["flow_type"]
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return f"{self.get_flow_type_display()}: {self.target_seconds // 60} min"

    def clean(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"time_zone": f"Unknown time zone {self.time_zone!r}; use an IANA name such as Europe/Berlin."}) from None
        if self.calendar == self.Calendar.BUSINESS and self.business_hours_end <= self.business_hours_start:
            raise ValidationError({"business_hours_end": "The working day must end after it starts."})
        if self.month_end_target_seconds and self.month_end_target_seconds > self.target_seconds:
            raise ValidationError({"month_end_target_seconds": "The month-end target must be stricter (shorter) than the normal target."})


class SlaHoliday(models.Model):
    """A day the business calendar does not count (all business-calendar policies)."""

    date = models.DateField(unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class AlertChannel(models.Model):
    """Where alerts go. Pluggable by `kind` (see monitoring/alerts/transports.py TRANSPORTS)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Signed JSON webhook (Slack, Teams, PagerDuty …)"

    class Event(models.TextChoices):
        SLA_BREACH = "sla_breach", "SLA breached"
        SLA_AT_RISK = "sla_at_risk", "SLA at risk"
        EXCEPTION_SPIKE = "exception_spike", "Exception spike"
        MISSING_EVENT = "missing_event", "Missing event detected"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.CharField(max_length=500, help_text="email: comma-separated addresses; webhook: the https URL")
    secret = models.CharField(max_length=200, blank=True, help_text="webhook: HMAC-SHA256 key for the X-Q2C-Signature header")
    events = models.JSONField(default=list, blank=True, help_text="event kinds to send; empty = all")
    enabled = models.BooleanField(default=True)
    dedupe_seconds = models.PositiveIntegerField(default=3600, help_text="the same alert (same key) is sent at most once in this period")
    max_per_hour = models.PositiveIntegerField(default=20, validators=[MinValueValidator(1)], help_text="rate limit; more are recorded as suppressed")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.events or event in self.events)


class SentAlert(models.Model):
    """One alert decision per channel: sent, failed, or suppressed (duplicate / rate limit)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"
        DUPLICATE = "duplicate", "suppressed: duplicate"
        RATE_LIMITED = "rate_limited", "suppressed: rate limit"

    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="alerts")
    event = models.CharField(max_length=32, choices=AlertChannel.Event.choices)
    dedupe_key = models.CharField(max_length=200)
    subject = models.CharField(max_length=255)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True, help_text="the screen the alert links to")
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["channel", "dedupe_key", "created_at"]),
            models.Index(fields=["channel", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel}: {self.status}"


DEFAULT_SLA_MINUTES = {
    FlowType.ORDER_ACTIVATION: 15,
    FlowType.AMENDMENT: 30,
    FlowType.RENEWAL: 60,
    FlowType.INVOICE_POSTING: 60,
    FlowType.PAYMENT_STATUS: 15,
}


# --- exception queue: bulk jobs, payload edits awaiting approval, saved views -----------------
# (appended by the exception-queue work; the imports are local to this section on purpose)
from django.conf import settings as _settings  # noqa: E402
from django.db.models import Q as _Q  # noqa: E402

FINANCIAL_FLOW_TYPES = (FlowType.INVOICE_POSTING, FlowType.PAYMENT_STATUS, FlowType.CREDIT_MEMO)


class BulkJob(models.Model):
    """A background retry of exactly the exceptions a filter matched when the job was created.

    The matched rows are snapshotted as BulkJobItems; the worker claims each item with
    compare-and-set, so a redelivered message never retries a step twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=16, default="retry")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    query = models.TextField(blank=True, help_text="the queue filter, as a query string (links back to the filtered queue)")
    description = models.CharField(max_length=255, blank=True, help_text="the filter in words")
    created_by = models.ForeignKey(_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    retried = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="no longer open when their turn came, or no step to retry")
    failed = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"bulk {self.kind} #{self.pk} ({self.status})"

    @property
    def processed(self) -> int:
        return self.retried + self.skipped + self.failed

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, (self.processed * 100) // self.total)

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class BulkJobItem(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        RETRIED = "retried"
        SKIPPED = "skipped"
        FAILED = "failed"

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items")
    exception = models.ForeignKey("sync.SyncException", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    note = models.CharField(max_length=255, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "exception"], name="uniq_bulk_item")]
        indexes = [models.Index(fields=["job", "state", "id"])]


class PayloadEdit(models.Model):
    """An edited payload for a failed step, kept beside the original.

    On financial documents (invoices, payments, credit memos) a second user with
    `monitoring.approve_financial_edits` must approve it before it is applied.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "awaiting approval"
        APPROVED = "approved", "approved and applied"
        REJECTED = "rejected"
        SUPERSEDED = "superseded", "superseded (the flow moved on without it)"

    exception = models.ForeignKey("sync.SyncException", on_delete=models.CASCADE, related_name="payload_edits")
    step = models.ForeignKey("sync.FlowStep", null=True, on_delete=models.SET_NULL, related_name="+")
    original = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(default=dict)
    reason = models.TextField(help_text="why the payload was edited")
    requires_approval = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(fields=["exception"], condition=_Q(status="pending"), name="uniq_pending_payload_edit"),
        ]
        indexes = [models.Index(fields=["status", "requested_at"])]

    def __str__(self) -> str:
        return f"payload edit #{self.pk} on exception {self.exception_id} ({self.status})"


class SavedView(models.Model):
    """A named queue filter: private to its owner, or shared with a role (group)."""

    name = models.CharField(max_length=80)
    owner = models.ForeignKey(_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="shared with this role")
    query = models.TextField(blank=True, help_text="the filter as a query string")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="uniq_saved_view_name")]

    def __str__(self) -> str:
        return self.name


# --- KPI rollups: per hour × flow type × legal entity × currency -------------------------------
from django.contrib.postgres.fields import ArrayField  # noqa: E402


class FlowRollup(models.Model):
    """Settled flow runs (completed or cancelled) summarised per UTC hour, so the KPI queries read
    a few thousand rows instead of every flow run in the window. Durations are kept as arrays, so
    percentiles over rollups are exactly the percentiles over the rows (`percentile_cont` over
    `unnest`). Each flow counts in three facts, each keyed by its own hour:

    - started (business_started_at): outcomes, invoice sync lag of posted invoices;
    - completed (business_completed_at): order cycle time;
    - due (sla_due_at): SLA met or not.

    Unsettled flows are never rolled up: their figures depend on "now". `monitoring.kpis.rollups`
    builds the table, and a trigger on sync_flowrun marks hours changed after they were rolled
    up (late events), so readers take those hours from the raw rows until the next refresh.
    """

    hour = models.DateTimeField()
    flow_type = models.CharField(max_length=32)
    legal_entity = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    # started in this hour
    started = models.IntegerField(default=0)
    started_with_exception = models.IntegerField(default=0)
    started_completed = models.IntegerField(default=0)
    started_first_pass = models.IntegerField(default=0)
    started_cancelled = models.IntegerField(default=0)
    started_durations = ArrayField(models.FloatField(), default=list, help_text="seconds, completed flows started in the hour")
    # completed in this hour
    completed = models.IntegerField(default=0)
    completed_durations = ArrayField(models.FloatField(), default=list, help_text="seconds, flows completed in the hour")
    # SLA due in this hour (settled and not cancelled: the outcome is known)
    due = models.IntegerField(default=0)
    due_met = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow_type", "hour", "legal_entity", "currency"], name="flowrollup_key")]


class RollupState(models.Model):
    """One row: hours before `watermark` are in FlowRollup, except the dirty ones."""

    watermark = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    last_hours = models.IntegerField(default=0, help_text="hours recomputed by the last refresh")
    last_seconds = models.FloatField(default=0)


class RollupDirtyHour(models.Model):
    """An hour whose rollup may be stale: a settled flow run with a timestamp in it changed after
    the hour could have been rolled up. Written by a trigger on sync_flowrun, cleared by refresh."""

    hour = models.DateTimeField(primary_key=True)
