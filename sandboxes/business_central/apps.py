from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandboxes.business_central"
    label = "business_central_sandbox"
    verbose_name = "business central sandbox"
    default_auto_field = "django.db.models.BigAutoField"
