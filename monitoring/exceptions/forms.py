"""Forms of the exception queue: they parse and bound the input; the services decide."""

from __future__ import annotations

import json

from django import forms

from .selectors import assignable_users


class ResolveForm(forms.Form):
    note = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class IgnoreForm(forms.Form):
    reason = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class AssignForm(forms.Form):
    assignee = forms.CharField(max_length=150, required=False)


class CommentForm(forms.Form):
    text = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3}))


class CancelFlowForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=False)
    confirm = forms.CharField(max_length=8, required=False)

    @property
    def confirmed(self) -> bool:
        return self.is_valid() and self.cleaned_data["confirm"].lower() in ("yes", "on", "true", "1")


class EditPayloadForm(forms.Form):
    payload = forms.CharField(max_length=200_000, widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"}))
    reason = forms.CharField(max_length=2000, required=False)

    def clean_payload(self):
        try:
            value = json.loads(self.cleaned_data["payload"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The payload must be a JSON object ({ … }).")
        return value


class DecisionForm(forms.Form):
    note = forms.CharField(max_length=2000, required=False)


class BulkRetryForm(forms.Form):
    expected_total = forms.IntegerField(min_value=0, required=False)


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=80)
    query = forms.CharField(max_length=2000, required=False)
    group = forms.IntegerField(required=False)


def assignee_choices() -> list[tuple[str, str]]:
    return [("", "— unassigned —")] + [(u.username, u.get_full_name() or u.username) for u in assignable_users()]


class CustomerDecisionForm(forms.Form):
    survivor = forms.ChoiceField(choices=[("candidate", "the existing customer"), ("record", "the arriving record")], required=False)
    note = forms.CharField(max_length=2000, required=False)
