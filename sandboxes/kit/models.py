from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class FaultConfig(models.Model):
    """Fault injection for one sandbox. Every field off = a healthy system."""

    system = models.CharField(max_length=32, unique=True)
    error_rate = models.FloatField(
        default=0.0, validators=[MinValueValidator(0), MaxValueValidator(1)], help_text="share of write requests answered with a 500"
    )
    latency_ms = models.PositiveIntegerField(default=0, help_text="added to every request")
    outage = models.BooleanField(default=False, help_text="every request answers 503")
    rate_limit_retry_after = models.PositiveIntegerField(default=0, help_text="> 0: answer 429 with this Retry-After (seconds)")
    rate_limit_requests = models.IntegerField(default=0, help_text="how many requests get the 429 before passing again (-1: all)")
    fail_records = models.JSONField(default=list, blank=True, help_text="record keys (ids, external ids, SKUs) that fail with a validation error")
    search_lag_seconds = models.PositiveIntegerField(
        default=0, help_text="Stripe: objects appear in /search only this long after they are written (real search lags up to a minute)"
    )
    garble_responses = models.PositiveIntegerField(
        default=0, help_text="the next N successful answers (writes done) come back as 200 with a garbage JSON body and no Location header"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "sandbox fault"

    def __str__(self) -> str:
        return self.system


class IdempotencyRecord(models.Model):
    """A replayable first response per (system, idempotency key), as the real systems keep."""

    system = models.CharField(max_length=32)
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.TextField()
    content_type = models.CharField(max_length=100, default="application/json")
    headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["system", "key"], name="uniq_sandbox_idem_key")]
