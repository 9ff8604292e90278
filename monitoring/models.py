"""Monitoring's own tables: SLA policies and the portal's role permissions."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

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
    """Target duration per flow type. Defaults from the design; editable by permitted users."""

    class Calendar(models.TextChoices):
        ALWAYS = "24x7", "24×7"
        BUSINESS = "business", "Business days"

    flow_type = models.CharField(max_length=32, choices=FlowType.choices, unique=True)
    target_seconds = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    objective_pct = models.DecimalField(max_digits=5, decimal_places=2, default=99, validators=[MinValueValidator(0), MaxValueValidator(100)])
    at_risk_pct = models.PositiveSmallIntegerField(default=80, validators=[MinValueValidator(1), MaxValueValidator(100)])
    calendar = models.CharField(max_length=16, choices=Calendar.choices, default=Calendar.ALWAYS)
    month_end_target_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="stricter target in the month-end close window")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["flow_type"]
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return f"{self.get_flow_type_display()}: {self.target_seconds // 60} min"


DEFAULT_SLA_MINUTES = {
    FlowType.ORDER_ACTIVATION: 15,
    FlowType.AMENDMENT: 30,
    FlowType.RENEWAL: 60,
    FlowType.INVOICE_POSTING: 60,
    FlowType.PAYMENT_STATUS: 15,
}
