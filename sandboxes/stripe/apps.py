from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandboxes.stripe"
    label = "stripe_sandbox"
    verbose_name = "stripe sandbox"
    default_auto_field = "django.db.models.BigAutoField"
