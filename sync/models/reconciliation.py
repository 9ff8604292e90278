"""Reconciliation: rule sets, runs, the per-run snapshot of what each system holds, and breaks.

A run reads every system through its connector into `ReconciliationRecord` rows (a streamed,
batched snapshot: memory stays flat however many customers there are), compares them with an
ordered, versioned `ReconciliationRuleSet`, and writes one `ReconciliationBreak` per
disagreement it finds. A break's `key` names the same disagreement across runs (its exception's
fingerprint carries it), so a later run that no longer finds it resolves the exception.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from .canonical import MoneyField
from .engine import SyncException


class ReconciliationRuleSet(models.Model):
    """An ordered, named list of rules (sync/reconciliation/rules.py says what a rule is).
    Saving a changed set makes a new version; runs record the version they used."""

    name = models.CharField(max_length=64, default="default")
    version = models.PositiveIntegerField()
    rules = models.JSONField()
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        permissions = [("manage_reconciliation_rules", "Can change reconciliation rules")]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="uniq_recon_ruleset_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class ReconciliationRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        SCREEN = "screen", "Run now (screen)"
        API = "api"

    ACTIVE_STATUSES = ("queued", "running")

    started_at = models.DateTimeField(auto_now_add=True)  # when it was requested
    began_at = models.DateTimeField(null=True, blank=True)  # when a worker took it
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rule_set = models.ForeignKey(ReconciliationRuleSet, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    phase = models.CharField(max_length=32, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent done")
    records = models.JSONField(default=dict, blank=True, help_text="records read per role: {crm, billing, erp}")
    customers_checked = models.PositiveIntegerField(default=0)
    documents_checked = models.PositiveIntegerField(default=0)
    documents_matched = models.PositiveIntegerField(default=0)
    documents_pending = models.PositiveIntegerField(default=0, help_text="inside the posting grace window: not judged yet")
    suggested = models.PositiveIntegerField(default=0, help_text="breaks with a suggested match waiting for review")
    breaks_found = models.PositiveIntegerField(default=0)
    breaks_resolved = models.PositiveIntegerField(default=0)
    breaks_by_type = models.JSONField(default=dict, blank=True, help_text="{break type: {count, value}} value in the reporting currency")
    breaks_value = MoneyField(help_text="sum of the breaks' value, reporting currency")
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "-started_at"], name="recon_run_status_idx")]

    @property
    def duration_seconds(self) -> float | None:
        if not self.began_at:
            return None
        end = self.finished_at
        if end is None:
            end = timezone.now()
        return (end - self.began_at).total_seconds()

    @property
    def match_rate(self) -> Decimal | None:
        judged = self.documents_checked - self.documents_pending
        if judged <= 0:
            return None
        return (Decimal(self.documents_matched) * 100 / judged).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


class ReconciliationBreak(models.Model):
    class BreakType(models.TextChoices):
        MISSING_IN_CRM = "missing_in_crm", "Missing in CRM"
        MISSING_IN_BILLING = "missing_in_billing", "Missing in billing"
        MISSING_IN_ERP = "missing_in_erp", "Missing in ERP"
        AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"
        CURRENCY_MISMATCH = "currency_mismatch", "Currency mismatch"
        STATUS_MISMATCH = "status_mismatch", "Status mismatch"
        TIMING = "timing", "Timing"
        DUPLICATE = "duplicate", "Duplicate"

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="breaks")
    key = models.CharField(max_length=200, default="", help_text="the same disagreement across runs")
    break_type = models.CharField(max_length=32, choices=BreakType.choices)
    document_type = models.CharField(max_length=16, default="", help_text="order, invoice, payment")
    document_number = models.CharField(max_length=64)
    deal_id = models.CharField(max_length=64, blank=True)
    account_name = models.CharField(max_length=255, blank=True)
    system = models.CharField(max_length=16, blank=True, help_text="the role whose record disagrees: crm, billing, erp")
    rule = models.CharField(max_length=128, blank=True, help_text="the rule that found it")
    currency = models.CharField(max_length=3, blank=True)
    crm_value = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    billing_value = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    erp_value = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    sides = models.JSONField(default=dict, blank=True, help_text="each role's record: ref, value, currency, status, date")
    difference = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True, help_text="document currency")
    difference_reporting = MoneyField()
    value_reporting = MoneyField(help_text="revenue at risk, reporting currency")
    document_date = models.DateField(null=True, blank=True)
    first_seen = models.DateTimeField(null=True, blank=True, help_text="first run that found it (age)")
    needs_review = models.BooleanField(default=False, help_text="a suggested match below the confidence bar")
    suggestion = models.JSONField(default=dict, blank=True)
    exception = models.ForeignKey(SyncException, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        indexes = [models.Index(fields=["run", "break_type"]), models.Index(fields=["key"], name="recon_break_key_idx")]


class ReconciliationRecord(models.Model):
    """One record one system holds, as a run read it (the run's snapshot; kept for the latest
    successful run only, which dry runs compare against)."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="+", db_index=False)
    role = models.CharField(max_length=8)  # crm, billing, erp
    kind = models.CharField(max_length=8)  # order, change, line, invoice
    key = models.CharField(max_length=128)  # document number
    deal_id = models.CharField(max_length=64, blank=True)
    ref = models.CharField(max_length=64, blank=True)  # the system's own id
    parent_ref = models.CharField(max_length=64, blank=True)  # line → order, ERP invoice → sales order
    account_ref = models.CharField(max_length=64, blank=True)
    account_name = models.CharField(max_length=255, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=4, null=True)
    arr = models.DecimalField(max_digits=18, decimal_places=4, null=True)
    paid = models.DecimalField(max_digits=18, decimal_places=4, null=True)
    status = models.CharField(max_length=24, blank=True)
    doc_date = models.DateField(null=True)
    changed_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["run", "kind", "key"], name="recon_record_key_idx"),
            models.Index(fields=["run", "role", "ref"], name="recon_record_ref_idx"),
        ]
