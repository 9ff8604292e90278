from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sync.connectors.stripe.sandbox"
    label = "stripe_sandbox"
    verbose_name = "stripe sandbox"
    default_auto_field = "django.db.models.BigAutoField"
