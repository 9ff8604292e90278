from django.contrib import admin

from . import models


@admin.register(models.OwnershipRule)
class OwnershipRuleAdmin(admin.ModelAdmin):
    list_display = ("field_group", "description", "owner_role")
    list_editable = ("owner_role",)


@admin.register(models.LegalEntity)
class LegalEntityAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "base_currency", "erp_subsidiary_id")
    search_fields = ("code", "name")


@admin.register(models.CurrencyRate)
class CurrencyRateAdmin(admin.ModelAdmin):
    list_display = ("currency", "rate_to_reporting", "valid_from")
    list_filter = ("currency",)


@admin.register(models.ExternalRef)
class ExternalRefAdmin(admin.ModelAdmin):
    list_display = ("system", "object_type", "external_id", "canonical_type", "canonical_id")
    list_filter = ("system", "object_type")
    search_fields = ("external_id", "canonical_id")


@admin.register(models.ConnectorState)
class ConnectorStateAdmin(admin.ModelAdmin):
    list_display = ("system", "circuit", "consecutive_failures", "last_success_at", "last_error_at")


@admin.register(models.AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_label", "object_type", "object_id", "action")
    list_filter = ("object_type", "action")
    search_fields = ("object_id", "correlation_id")

    # append-only for everyone, superusers included: entries are written by the product, never typed in
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


for model in (models.Customer, models.Product, models.Order, models.Invoice, models.Subscription, models.InboxEvent, models.OutboxMessage):
    admin.site.register(model)


@admin.register(models.IntegrationScope)
class IntegrationScopeAdmin(admin.ModelAdmin):
    """What each integration token may send (sync/scopes.py); `manage.py issue_token --scope` sets it."""

    list_display = ("user", "preset", "sources", "event_types", "updated_at")
    list_filter = ("preset",)
