from django.apps import AppConfig


class SandboxKitConfig(AppConfig):
    name = "sandboxes.kit"
    label = "sandbox_kit"
    verbose_name = "Sandboxes (local simulators)"
    default_auto_field = "django.db.models.BigAutoField"
