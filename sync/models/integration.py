"""Integration credentials' scopes (sync/scopes.py): which sources and event types a token may send."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


class IntegrationScope(models.Model):
    """The scope of one integration user's API token (DRF keeps one token per user)."""

    class Preset(models.TextChoices):
        CRM = "crm", "CRM relay"
        BILLING = "billing", "Billing relay"
        PAYMENTS = "payments", "Payments relay"
        ERP = "erp", "ERP relay"
        USAGE = "usage", "Usage metering"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="integration_scope")
    preset = models.CharField(max_length=16, choices=Preset.choices)
    sources = ArrayField(models.CharField(max_length=64), help_text="envelope `source` values this token may claim")
    event_types = ArrayField(models.CharField(max_length=96), help_text="canonical event types this token may send")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.preset})"
