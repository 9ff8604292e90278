from django.contrib import admin

from .models import SlaPolicy


@admin.register(SlaPolicy)
class SlaPolicyAdmin(admin.ModelAdmin):
    list_display = ("flow_type", "target_seconds", "objective_pct", "at_risk_pct", "calendar", "month_end_target_seconds")
    list_editable = ("target_seconds", "objective_pct", "at_risk_pct", "calendar")
