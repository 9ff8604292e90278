"""Customer master data: what the matcher decided about each arriving customer record, and the
merges people made (reversible: a merge stores exactly what moved)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .canonical import Customer
from .engine import FlowRun, FlowType, SyncException


class CustomerMatch(models.Model):
    """One arriving customer record the hub did not know, and what became of it.

    new: no candidate → a new customer. auto_linked: linked to an existing customer without a
    person. review: a provisional customer was made for the record and a duplicate/conflict
    exception asks a person to merge or keep apart; flows using the record wait (parked).
    """

    class Outcome(models.TextChoices):
        NEW = "new", "new customer"
        AUTO_LINKED = "auto_linked", "linked automatically"
        REVIEW = "review", "sent for review"

    class Decision(models.TextChoices):
        PENDING = "", "waiting for a decision"
        MERGED = "merged", "merged"
        KEPT_SEPARATE = "kept_separate", "kept separate"
        UNMERGED = "unmerged", "unmerged (kept separate)"

    created_at = models.DateTimeField(auto_now_add=True)
    # the arriving record
    system = models.CharField(max_length=32)
    object_type = models.CharField(max_length=64)
    external_id = models.CharField(max_length=255)
    record = models.JSONField(default=dict, help_text="the record's attributes as received, and their match keys")
    flow_type = models.CharField(max_length=32, choices=FlowType.choices, blank=True)
    flow_run = models.ForeignKey(FlowRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="customer_matches")
    # what the matcher found
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error_class = models.CharField(max_length=16, blank=True, help_text="duplicate or conflict, for review")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="matches", help_text="the customer the record belongs to now")
    candidate = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="candidate_matches")
    score = models.DecimalField(max_digits=5, decimal_places=1, null=True, blank=True)
    evidence = models.JSONField(default=list, blank=True, help_text="per field: both values, comparison, score, weight")
    candidates = models.JSONField(default=list, blank=True, help_text="every candidate considered, best first")
    reasons = models.JSONField(default=list, blank=True, help_text="why this outcome (e.g. why not linked automatically)")
    exception = models.ForeignKey(SyncException, null=True, blank=True, on_delete=models.SET_NULL, related_name="customer_matches")
    # the decision (review only)
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True, default="")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        permissions = [("decide_customer_match", "Can merge, unmerge and keep customers separate")]
        indexes = [
            models.Index(fields=["created_at"], name="custmatch_created_idx"),
            models.Index(fields=["customer"], name="custmatch_open_customer_idx", condition=Q(outcome="review", decision="")),
            models.Index(fields=["system", "object_type", "external_id"], name="custmatch_record_idx"),
        ]

    def __str__(self) -> str:
        return f"match #{self.pk} {self.system}:{self.external_id} → {self.outcome}"

    @property
    def is_open(self) -> bool:
        return self.outcome == self.Outcome.REVIEW and not self.decision

    @property
    def waits_for(self) -> str:
        """What flows parked on this review wait for (sync.flows.registry.provided knows it)."""
        return f"customer-match:{self.pk}"


class CustomerMerge(models.Model):
    """`merged` was folded into `survivor`. `moved` lists exactly which rows were re-pointed, so
    an unmerge puts back those and only those; `survivor_before` restores its changed fields."""

    survivor = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_survived")
    merged = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_absorbed")
    match = models.ForeignKey(CustomerMatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="merges")
    moved = models.JSONField(default=dict, help_text="kind → ids re-pointed from merged to survivor")
    survivor_before = models.JSONField(default=dict, help_text="the survivor's fields the merge changed, before")
    survivor_after = models.JSONField(default=dict, help_text="the same fields after the merge")
    field_choices = models.JSONField(default=dict, help_text="field → whose value survived (survivor / merged) and why")
    merged_at = models.DateTimeField(auto_now_add=True)
    merged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField(blank=True)
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    unmerge_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            # a customer is merged into at most one survivor at a time
            models.UniqueConstraint(fields=["merged"], condition=Q(unmerged_at__isnull=True), name="uniq_active_merge_per_customer"),
        ]
        indexes = [models.Index(fields=["survivor"], name="custmerge_survivor_idx")]

    @property
    def active(self) -> bool:
        return self.unmerged_at is None
