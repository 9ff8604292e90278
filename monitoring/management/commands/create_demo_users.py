"""One demo user per role (and an admin), with a known password for the demo."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from monitoring.roles import EXECUTIVE, FINANCE, IT_OPS, REVOPS

DEMO_USERS = [
    ("erin", "Erin Exec", EXECUTIVE),
    ("fiona", "Fiona Finance", FINANCE),
    ("rick", "Rick RevOps", REVOPS),
    ("oscar", "Oscar On-call", IT_OPS),
]


class Command(BaseCommand):
    help = "Create demo users erin (Executive), fiona (Finance), rick (RevOps), oscar (IT Operations) and admin."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="demo-pass-2026", help="password for every demo user")

    def handle(self, *args, password: str, **options):
        User = get_user_model()
        for username, full_name, role in DEMO_USERS:
            first, last = full_name.split(" ", 1)
            user, created = User.objects.get_or_create(username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com"})
            if created:
                user.set_password(password)
                user.save()
            user.groups.set([Group.objects.get(name=role)])
            self.stdout.write(f"  {username:<7} {role:<14} {'created' if created else 'exists'}")
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"})
        if created:
            admin.set_password(password)
            admin.save()
        self.stdout.write(f"  admin   superuser      {'created' if created else 'exists'}")
