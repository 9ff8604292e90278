from django.contrib import admin

from .models import AlertChannel, SentAlert, SlaHoliday, SlaPolicy


@admin.register(SlaPolicy)
class SlaPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "flow_type",
        "target_seconds",
        "objective_pct",
        "at_risk_pct",
        "calendar",
        "month_end_target_seconds",
        "time_zone",
        "updated_at",
        "updated_by",
    )
    list_editable = ("target_seconds", "objective_pct", "at_risk_pct", "calendar")
    readonly_fields = ("updated_at", "updated_by")


@admin.register(SlaHoliday)
class SlaHolidayAdmin(admin.ModelAdmin):
    list_display = ("date", "name")
    date_hierarchy = "date"


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "target", "enabled", "events", "dedupe_seconds", "max_per_hour")
    list_filter = ("kind", "enabled")


@admin.register(SentAlert)
class SentAlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "channel", "event", "subject", "status", "sent_at")
    list_filter = ("status", "event", "channel")
    search_fields = ("subject", "dedupe_key")
    readonly_fields = [f.name for f in SentAlert._meta.fields]

    def has_add_permission(self, request):
        return False
