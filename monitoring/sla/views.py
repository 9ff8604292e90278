"""The SLA page: compliance per flow type against its objective, breaches and flows at risk
with a drill-down to the rows behind each figure, and the policies (editable by roles that
manage SLAs)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from monitoring.dashboards.charts import sla_compliance_chart
from monitoring.dashboards.context import kpi_context, window_from
from monitoring.dashboards.filters import FlowRunFilterSet
from monitoring.kpis import sla as sla_kpis
from monitoring.kpis.window import Window
from monitoring.models import SentAlert, SlaHoliday, SlaPolicy
from monitoring.pages import paginate, portal_page, render_dashboard

from .forms import SlaPolicyForm
from .selectors import sla_at_risk, sla_breaches
from .services import sla_policy_update


def _sla_context(request: HttpRequest, window: Window, forms: dict | None = None) -> dict:
    sla_rows = sla_kpis.sla(window)
    can_manage = request.user.has_perm("monitoring.manage_sla")
    policies = list(SlaPolicy.objects.all())
    forms = forms or {}
    flow = request.GET.get("flow", "")
    outcome = request.GET.get("sla", "")
    drill = None
    if outcome in ("due", "met", "breached", "at_risk") and flow in sla_rows:
        filters = FlowRunFilterSet(request.GET, flow_types=[flow], window=window, request=request)
        drill = {"flow": flow, "label": sla_rows[flow]["label"], "outcome": outcome, "page_obj": paginate(request, filters.qs)}
    return {
        **kpi_context(request, window, "SLA"),
        "sla": sla_rows,
        "overall": sla_kpis.sla_overall(sla_rows),
        "chart": sla_compliance_chart(sla_kpis.daily_sla(window), sla_rows),
        "breaches": sla_breaches(limit=50, entity=window.entity),
        "at_risk": sla_at_risk(limit=50, entity=window.entity, now=window.as_of),
        "can_manage": can_manage,
        "policy_forms": [(p, forms.get(p.pk) or SlaPolicyForm(instance=p, prefix=f"p{p.pk}")) for p in policies] if can_manage else [],
        "policies": policies,
        "holidays": SlaHoliday.objects.filter(date__gte=timezone.localdate() - timedelta(days=7))[:20],
        "recent_alerts": SentAlert.objects.select_related("channel")[:10],
        "drill": drill,
    }


@portal_page("monitoring.view_kpis")
def sla(request: HttpRequest) -> HttpResponse:
    window = window_from(request)
    return render_dashboard(request, "monitoring/sla.html", _sla_context(request, window))


@portal_page("monitoring.manage_sla")
@require_POST
def sla_policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit one SLA policy. The permission is checked here (403), not only hidden in the page."""
    policy = get_object_or_404(SlaPolicy, pk=pk)
    form = SlaPolicyForm(request.POST, instance=SlaPolicy.objects.get(pk=pk), prefix=f"p{pk}")
    if form.is_valid():
        try:
            sla_policy_update(policy_id=policy.pk, user=request.user, data=form.cleaned_data)
        except ValidationError as exc:  # the model's rules (time zone, stricter month-end …), shown on their form field
            names = {"target_seconds": "target_minutes", "month_end_target_seconds": "month_end_minutes"}
            for field, errors in exc.message_dict.items():
                name = names.get(field, field)
                form.add_error(name if name in form.fields else None, errors)
        else:
            messages.success(request, f"{policy.get_flow_type_display()} SLA saved: new flows get the new target; running flows keep their due time.")
            return redirect(reverse("monitoring:sla") + "#policies")
    window = window_from(request)
    return render(request, "monitoring/sla.html", _sla_context(request, window, forms={pk: form}), status=400)
