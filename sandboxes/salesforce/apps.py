from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandboxes.salesforce"
    label = "salesforce_sandbox"
    verbose_name = "salesforce sandbox"
    default_auto_field = "django.db.models.BigAutoField"
