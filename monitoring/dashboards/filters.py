"""The flow list under each dashboard (Orders, Amendments, Invoices, the SLA drill-down), as a
FilterSet. Every figure on a dashboard links to this list with the same definition as the
figure (window basis, duration bucket, SLA outcome), so the rows behind a number are one click
away and add up to it."""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from monitoring.filtering import QueryFilterSet
from monitoring.formatting import duration
from monitoring.kpis.sla import at_risk_ids
from sync.models import FlowRun

IN_FLIGHT = "in_flight"  # the status filter's one value beyond FlowRun.Status
BASES = [("started", "started in the window"), ("completed", "completed in the window")]
SLA_OUTCOMES = [("due", "SLA due in the window"), ("met", "SLA met"), ("breached", "SLA breached"), ("at_risk", "SLA at risk now")]
PAYMENT_KINDS = [("received", "payments received"), ("failed", "payment failures")]
SORTS = [(value, value) for value in ("-business_started_at", "business_started_at", "-amount_reporting", "business_completed_at", "-duration")]


class SecondsField(forms.CharField):
    """A whole number of seconds (a histogram bar's edge)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value and not value.isdigit():
            raise ValidationError("Give a whole number of seconds.", code="invalid")
        return int(value) if value else None


class SecondsFilter(django_filters.Filter):
    field_class = SecondsField


class FlowRunFilterSet(QueryFilterSet):
    """A page's flow list. Its scope is the page's flow types (`flow` picks one of them) within
    the page's window; `entity` and `currency` default to the window's, which reads the same
    parameters. The other parameters narrow it the way the page's figures are defined:
    `basis` (started or completed in the window), a duration bucket (`min_seconds`,
    `max_seconds`; an unfinished flow counts with its age), an SLA outcome, `exc` (raised an
    exception, or not). A value that is not understood is ignored."""

    status = django_filters.CharFilter(method="filter_status")  # a FlowRun status, or in_flight
    entity = django_filters.CharFilter(field_name="legal_entity")
    currency = django_filters.CharFilter(method="filter_currency")
    q = django_filters.CharFilter(method="filter_q")
    basis = django_filters.ChoiceFilter(choices=BASES, method="filter_basis")
    exc = django_filters.CharFilter(method="filter_exc")  # "1": raised an exception, "0": did not
    payment = django_filters.ChoiceFilter(choices=PAYMENT_KINDS, method="filter_payment")  # payment flows: received or failed
    min_seconds = SecondsFilter(method="filter_min_seconds")
    max_seconds = SecondsFilter(method="filter_max_seconds")
    sla = django_filters.ChoiceFilter(choices=SLA_OUTCOMES, method="filter_sla")
    sort = django_filters.ChoiceFilter(choices=SORTS, method="filter_sort", required=True)

    defaults = {"sort": "-business_started_at"}

    class Meta:
        model = FlowRun
        fields = []

    def __init__(self, data=None, *, flow_types: list[str], window=None, request=None):
        params = data if data is not None else {}
        self.window = window
        self.now = window.as_of if window is not None else timezone.now()
        if window is not None:
            self.defaults = {**self.defaults, "entity": window.entity, "currency": window.currency}
        super().__init__(params, request=request)
        flow = self._text(params.get("flow", ""))
        self.data["flow"] = flow  # not a filter: it picks the scope
        queryset = FlowRun.objects.filter(flow_type__in=[flow] if flow in flow_types else list(flow_types))
        if self.data["min_seconds"] or self.data["max_seconds"] or self.data["sort"] == "-duration":
            end = Coalesce(F("business_completed_at"), Value(self.now, output_field=DateTimeField()))
            queryset = queryset.annotate(duration=ExpressionWrapper(end - F("business_started_at"), output_field=DurationField()))
        self.queryset = queryset

    # --- filters --------------------------------------------------------------------------
    def filter_status(self, queryset, name, value):
        if value == IN_FLIGHT:
            return queryset.filter(status__in=FlowRun.ACTIVE_STATUSES)
        return queryset.filter(status=value)

    def filter_currency(self, queryset, name, value):
        return queryset.filter(currency=value.upper())

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(document_number__istartswith=value) | Q(account_name__icontains=value))

    def filter_basis(self, queryset, name, value):
        window = self.window
        if window is None:
            return queryset
        if value == "completed":
            return queryset.filter(status=FlowRun.Status.COMPLETED, business_completed_at__gte=window.start, business_completed_at__lt=window.end)
        return queryset.filter(business_started_at__gte=window.start, business_started_at__lt=window.end).exclude(status=FlowRun.Status.CANCELLED)

    def filter_exc(self, queryset, name, value):
        return queryset.filter(had_exception=value == "1")

    def filter_payment(self, queryset, name, value):
        return queryset.filter(flow_type="payment_status", context__event__type=f"payment.{value}.v1")

    def filter_min_seconds(self, queryset, name, value):
        return queryset.filter(duration__gte=timedelta(seconds=value))

    def filter_max_seconds(self, queryset, name, value):
        return queryset.filter(duration__lt=timedelta(seconds=value))

    def filter_sla(self, queryset, name, value):
        queryset = queryset.filter(sla_due_at__isnull=False).exclude(status=FlowRun.Status.CANCELLED)
        if value == "at_risk":
            return queryset.filter(id__in=at_risk_ids(self.now))
        if self.window is not None:
            queryset = queryset.filter(sla_due_at__gte=self.window.start, sla_due_at__lt=self.window.end)
        queryset = queryset.filter(Q(business_completed_at__isnull=False) | Q(sla_due_at__lte=self.now))  # the outcome is known
        met = Q(business_completed_at__isnull=False, business_completed_at__lte=F("sla_due_at"))
        if value == "met":
            return queryset.filter(met)
        if value == "breached":
            return queryset.exclude(met)
        return queryset

    def filter_sort(self, queryset, name, value):
        return queryset.order_by(value, "-id")

    # --- in words ---------------------------------------------------------------------------
    @property
    def narrowed(self) -> list[str]:
        """Human words for the filters that come from a clicked figure (shown above the table)."""
        data, words = self.data, []
        if data["basis"]:
            words.append(dict(BASES)[data["basis"]])
        if data["min_seconds"] or data["max_seconds"]:
            words.append(f"duration {duration(data['min_seconds'] or 0)} – {duration(data['max_seconds']) if data['max_seconds'] else '∞'}")
        if data["sla"]:
            words.append(dict(SLA_OUTCOMES)[data["sla"]])
        if data["exc"]:
            words.append("raised an exception" if data["exc"] == "1" else "no exception")
        if data["payment"]:
            words.append(dict(PAYMENT_KINDS)[data["payment"]])
        return words
