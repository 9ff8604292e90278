"""Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from
one address, that pair is refused for AXES_COOLOFF_TIME, on the login page and the admin login
alike. The person sees why and for how long on the login page; IT unlocks earlier with
`manage.py axes_reset_username <name>` (README: "Locked-out users")."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render


def _minutes(cool_off) -> int:
    seconds = cool_off.total_seconds() if hasattr(cool_off, "total_seconds") else float(cool_off or 0) * 3600
    return max(1, round(seconds / 60))


def locked_out(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the login page again, with a readable message, answered 429."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "locked_out": True,
        "lockout_minutes": _minutes(settings.AXES_COOLOFF_TIME),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "next": request.POST.get("next", request.GET.get("next", "")),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(_minutes(settings.AXES_COOLOFF_TIME) * 60)
    return response
