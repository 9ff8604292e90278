"""Issue (or show) the API token of an integration user: `manage.py issue_token crm-relay`."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create an integration user if needed and print its API token (Authorization: Token <key>)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="replace an existing token")
        parser.add_argument("--perm", action="append", default=[], help="extra permission app_label.codename (repeatable)")

    def handle(self, *args, username: str, rotate: bool, perm: list[str], **options):
        User = get_user_model()
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
        if rotate:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
