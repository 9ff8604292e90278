"""State of the Stripe sandbox, in PostgreSQL.

Every Stripe object (customer, product, price, subscription, invoice, credit note, meter
event) is one row holding the JSON Stripe would return, plus the few columns the API
filters on. Events carry their webhook delivery bookkeeping.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class StripeObject(models.Model):
    seq = models.BigAutoField(primary_key=True)  # creation order: lists are newest first
    id = models.CharField(max_length=255, unique=True)
    object = models.CharField(max_length=64)  # "customer", "subscription", "invoice", …
    created = models.BigIntegerField()  # Unix seconds, as Stripe
    customer = models.CharField(max_length=255, blank=True, db_index=True)
    subscription = models.CharField(max_length=255, blank=True, db_index=True)
    email = models.CharField(max_length=512, blank=True)
    hub_id = models.CharField(max_length=255, blank=True)  # metadata['hub_id'], for /search
    lookup = models.CharField(max_length=255, blank=True)  # meter event identifier
    idempotency_key = models.CharField(max_length=255, blank=True)  # the request that created it
    data = models.JSONField()
    state = models.JSONField(default=dict, blank=True)  # sandbox-only bookkeeping (pending prorations…)

    class Meta:
        indexes = [
            models.Index(fields=["object", "-seq"]),
            models.Index(fields=["object", "hub_id"]),
            models.Index(fields=["object", "email"]),
            models.Index(fields=["object", "idempotency_key"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["object", "lookup"], condition=~Q(lookup=""), name="uniq_stripe_sandbox_lookup"),
        ]

    def __str__(self) -> str:
        return self.id


class SandboxEvent(models.Model):
    class Delivery(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up after the last retry

    seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=96)
    created = models.BigIntegerField()
    data = models.JSONField()  # the whole Event object
    delivery = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_attempt_at"], name="stripe_sbx_evt_pending_idx", condition=Q(delivery="pending")),
            models.Index(fields=["type", "-seq"]),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class Counter(models.Model):
    """Sequences: invoice numbers per customer prefix, credit note numbers per invoice."""

    name = models.CharField(max_length=255, unique=True)
    value = models.BigIntegerField(default=0)
