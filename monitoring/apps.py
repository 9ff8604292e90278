from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # imported here, not at the top: roles.py imports models, which need the app registry ready
        from .roles import ensure_roles

        # Groups and their permissions follow the code on every migrate (idempotent).
        post_migrate.connect(ensure_roles, sender=self)
