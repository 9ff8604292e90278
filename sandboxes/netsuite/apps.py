from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandboxes.netsuite"
    label = "netsuite_sandbox"
    verbose_name = "netsuite sandbox"
    default_auto_field = "django.db.models.BigAutoField"
