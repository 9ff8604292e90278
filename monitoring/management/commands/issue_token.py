"""Issue (or show) the API token of an integration user, bound to a scope:
`manage.py issue_token crm-relay --scope crm` (sync/scopes.py lists the presets)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from sync.scopes import PRESETS, grant, preset_for_username


class Command(BaseCommand):
    help = "Create an integration user if needed, bind its token to a scope, and print the token (Authorization: Token <key>)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--scope",
            choices=sorted(PRESETS),
            help="the sources and event types the token may send; default: the scope it has, else the one its name says (crm-relay → crm)",
        )
        parser.add_argument("--source", action="append", default=[], help="an extra envelope source the token may claim (repeatable)")
        parser.add_argument("--event-type", action="append", default=[], help="an extra canonical event type the token may send (repeatable)")
        parser.add_argument("--rotate", action="store_true", help="replace an existing token")
        parser.add_argument("--perm", action="append", default=[], help="extra permission app_label.codename (repeatable)")

    def handle(self, *args, username: str, scope: str | None, source: list[str], event_type: list[str], rotate: bool, perm: list[str], **options):
        User = get_user_model()
        existing = User.objects.filter(username=username).first()
        current = getattr(existing, "integration_scope", None) if existing else None
        preset = scope or (current.preset if current else None) or preset_for_username(username)
        if preset is None:
            raise CommandError(f"Say what {username!r} may send: --scope {{{','.join(sorted(PRESETS))}}}.")
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()  # token only: cannot log in to the UI
            user.save()
        # integration users may post events; that is what a token is for
        wanted = ["sync.add_inboxevent", *perm]
        for dotted in wanted:
            try:
                app_label, codename = dotted.split(".", 1)
                user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
            except (ValueError, Permission.DoesNotExist):
                raise CommandError(f"Unknown permission {dotted!r}") from None
        if scope or source or event_type or current is None:
            extra_sources = tuple(source) if scope or not current else tuple({*current.sources, *source})
            extra_types = tuple(event_type) if scope or not current else tuple({*current.event_types, *event_type})
            try:
                grant(user, preset, extra_sources=extra_sources, extra_event_types=extra_types)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        if rotate:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
