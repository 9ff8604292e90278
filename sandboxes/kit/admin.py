from django.contrib import admin

from .models import FaultConfig


@admin.register(FaultConfig)
class FaultConfigAdmin(admin.ModelAdmin):
    list_display = ("system", "outage", "error_rate", "latency_ms", "rate_limit_retry_after", "rate_limit_requests", "fail_records", "updated_at")
    list_editable = ("outage", "error_rate", "latency_ms", "rate_limit_retry_after", "rate_limit_requests")
