from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from monitoring.live.selectors import outage_banner

# (url name, label, permission) in navigation order
NAV = [
    ("monitoring:overview", "Overview", "monitoring.view_kpis"),
    ("monitoring:orders", "Orders", "monitoring.view_kpis"),
    ("monitoring:amendments", "Amendments", "monitoring.view_kpis"),
    ("monitoring:invoices", "Invoices", "monitoring.view_kpis"),
    ("monitoring:exceptions", "Exceptions", "monitoring.view_exceptions"),
    ("monitoring:sla", "SLA", "monitoring.view_kpis"),
    ("monitoring:reconciliation", "Reconciliation", "monitoring.view_reconciliation"),
    ("monitoring:traces", "Traces", "monitoring.view_traces"),
    ("monitoring:connectors", "Connectors", "monitoring.view_connectors"),
]


def portal(request) -> dict:
    context = {"reporting_currency": settings.REPORTING_CURRENCY, "current_tz": timezone.get_current_timezone_name()}
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated:
        return context
    path = request.path
    items = []
    for name, label, perm in NAV:
        if user.has_perm(perm):
            url = reverse(name)
            active = path == url if url == "/" else path.startswith(url)
            items.append({"url": url, "label": label, "active": active})
    context["nav_items"] = items
    context["user_roles"] = sorted(user.groups.values_list("name", flat=True))
    context["can_act"] = user.has_perm("sync.act_on_exception")
    context["outage"] = outage_banner()  # cached a few seconds: every page asks
    return context
