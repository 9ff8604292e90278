"""The SLA page's policy form."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from monitoring.models import SlaPolicy


class SlaPolicyForm(forms.Form):
    """The SLA page's edit form: minutes in the form, seconds in the policy."""

    target_minutes = forms.DecimalField(min_value=Decimal("0.1"), max_digits=8, decimal_places=1, label="Target (minutes)")
    objective_pct = forms.DecimalField(min_value=0, max_value=100, max_digits=5, decimal_places=2, label="Objective (% met)")
    at_risk_pct = forms.IntegerField(min_value=1, max_value=100, label="At risk after (% of target)")
    calendar = forms.ChoiceField(choices=SlaPolicy.Calendar.choices)
    business_hours_start = forms.TimeField(label="Working day from")
    business_hours_end = forms.TimeField(label="to")
    time_zone = forms.CharField(max_length=64)
    month_end_minutes = forms.DecimalField(required=False, min_value=Decimal("0.1"), max_digits=8, decimal_places=1, label="Month-end target (minutes)")
    month_end_days_before = forms.IntegerField(min_value=0, max_value=15, label="Close window: last days of month")
    month_end_days_after = forms.IntegerField(min_value=0, max_value=15, label="first days of next month")

    def __init__(self, *args, instance: SlaPolicy, **kwargs):
        initial = {
            "target_minutes": Decimal(instance.target_seconds) / 60,
            "objective_pct": instance.objective_pct,
            "at_risk_pct": instance.at_risk_pct,
            "calendar": instance.calendar,
            "business_hours_start": instance.business_hours_start,
            "business_hours_end": instance.business_hours_end,
            "time_zone": instance.time_zone,
            "month_end_minutes": Decimal(instance.month_end_target_seconds) / 60 if instance.month_end_target_seconds else None,
            "month_end_days_before": instance.month_end_days_before,
            "month_end_days_after": instance.month_end_days_after,
        }
        super().__init__(*args, initial=initial, **kwargs)
        self.instance = instance

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        data["target_seconds"] = int(data.pop("target_minutes") * 60)
        month_end = data.pop("month_end_minutes")
        data["month_end_target_seconds"] = int(month_end * 60) if month_end else None
        return data
