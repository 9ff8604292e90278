"""The exception queue's filter, as a FilterSet: the queue page, root causes, bulk retry, CSV
export, saved views and the API all read the same parameters the same way. Every column it
touches is indexed; filters apply in declaration order (the order of the SQL's conditions)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.utils import timezone

from monitoring.filtering import QueryFilterSet
from sync.flows.registry import writeback_steps
from sync.models import ErrorClass, FlowType, SyncException, System

ERROR_CLASS_CHOICES = ErrorClass.choices
SYSTEM_CHOICES = [(s.value, s.label) for s in (System.SALESFORCE, System.NETSUITE, System.STRIPE, System.HUB, System.API)]
ACTIVE, ALL = "active", "all"  # the status filter's two values beyond SyncException.Status
STATUS_CHOICES = [(ACTIVE, "Open + retrying"), *SyncException.Status.choices, (ALL, "All")]
AGE_CHOICES = [("1h", "Under 1 hour"), ("1d", "1–24 hours"), ("7d", "1–7 days"), ("old", "Over 7 days")]
_AGE_RANGES = {  # (youngest, oldest) age of first_seen
    "1h": (None, timedelta(hours=1)),
    "1d": (timedelta(hours=1), timedelta(days=1)),
    "7d": (timedelta(days=1), timedelta(days=7)),
    "old": (timedelta(days=7), None),
}
RECORDS_CHOICES = [("out_of_date", "CRM records out of date (write-back failed)")]
RETRY_CHOICES = [("0", "Never retried"), ("1", "Retried at least once"), ("3", "Retried 3+ times")]
SORT_CHOICES = [
    # time sorts name the time they sort by; the queue's first column shows that same time
    ("-last_seen", "Last seen, newest"),
    ("first_seen", "Age, oldest first"),
    ("-first_seen", "Age, newest first"),
    ("-amount", "Largest amount"),
    ("amount", "Smallest amount"),
    ("-revenue_at_risk", "Most revenue at risk"),
    ("-occurrences", "Most occurrences"),
]
# the list never loads the (possibly large) payload and response documents
_LIST_DEFERRED = ("payload", "response")


def _not_one_of(choices) -> dict[str, str]:
    """Error messages of a choice parameter: "'bogus' is not one of: a, b, c."."""
    listed = ", ".join(sorted(value for value, _ in choices))
    return {"invalid_choice": f"%(value)r is not one of: {listed}.", "required": f"'' is not one of: {listed}."}


class AmountField(forms.Field):
    """A decimal amount as people type it: '12,500.00'."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            number = Decimal(value.replace(",", ""))
            if not number.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise ValidationError(f"{value!r} is not a number.", code="invalid") from None
        return number


class AmountFilter(django_filters.Filter):
    field_class = AmountField


class CurrencyField(forms.CharField):
    """An ISO 4217 code, compared upper-case."""

    def to_python(self, value):
        value = super().to_python(value)
        if value and not (len(value) == 3 and value.isalpha()):
            raise ValidationError("Use a three-letter ISO 4217 code, e.g. EUR.", code="invalid")
        return value.upper()


class CurrencyFilter(django_filters.CharFilter):
    field_class = CurrencyField


class ExceptionFilterSet(QueryFilterSet):
    """The queue's filter, from and back to a query string, so every view is a shareable link.
    One row per fingerprint (a recurring failure is one row), sorted; `assignee=me` is the
    request's user."""

    status = django_filters.ChoiceFilter(choices=STATUS_CHOICES, method="filter_status", error_messages=_not_one_of(STATUS_CHOICES))
    error_class = django_filters.ChoiceFilter(choices=ERROR_CLASS_CHOICES, error_messages=_not_one_of(ERROR_CLASS_CHOICES))
    system = django_filters.ChoiceFilter(choices=SYSTEM_CHOICES, error_messages=_not_one_of(SYSTEM_CHOICES))
    flow_type = django_filters.ChoiceFilter(choices=FlowType.choices, error_messages=_not_one_of(FlowType.choices))
    step = django_filters.CharFilter(field_name="step_name")
    cause = django_filters.CharFilter(field_name="cause_key")
    document = django_filters.CharFilter(field_name="document_number")
    deal = django_filters.CharFilter(field_name="flow_run__deal_id")  # every exception of one deal (its flows carry the deal id)
    currency = CurrencyFilter()
    account = django_filters.CharFilter(field_name="account_name", lookup_expr="istartswith")
    assignee = django_filters.CharFilter(method="filter_assignee")
    amount_min = AmountFilter(field_name="amount", lookup_expr="gte")
    amount_max = AmountFilter(field_name="amount", lookup_expr="lte")
    risk_min = AmountFilter(field_name="revenue_at_risk", lookup_expr="gte")
    retries = django_filters.ChoiceFilter(choices=RETRY_CHOICES, method="filter_retries", error_messages=_not_one_of(RETRY_CHOICES))
    age = django_filters.ChoiceFilter(choices=AGE_CHOICES, method="filter_age", error_messages=_not_one_of(AGE_CHOICES))
    # money views (docs/MONEY.md): the failed CRM write-backs behind "records out of date", and the
    # breaks of one closing month (first seen in it, in the viewer's zone: YYYY-MM)
    records = django_filters.ChoiceFilter(choices=RECORDS_CHOICES, method="filter_records", error_messages=_not_one_of(RECORDS_CHOICES))
    month = django_filters.CharFilter(method="filter_month")
    q = django_filters.CharFilter(method="filter_q")
    sort = django_filters.ChoiceFilter(choices=SORT_CHOICES, method="filter_sort", required=True, error_messages=_not_one_of(SORT_CHOICES))

    defaults = {"status": ACTIVE, "sort": "-last_seen"}
    # the order saved views, bulk jobs and links were always written in
    query_order = (
        "status",
        "error_class",
        "system",
        "flow_type",
        "step",
        "assignee",
        "cause",
        "account",
        "document",
        "deal",
        "currency",
        "amount_min",
        "amount_max",
        "risk_min",
        "retries",
        "age",
        "records",
        "month",
        "q",
        "sort",
    )
    # problems are listed choices first, then amounts, then the currency (pages and API show them so)
    report_order = ("status", "error_class", "system", "flow_type", "age", "retries", "sort", "amount_min", "amount_max", "risk_min", "currency")
    max_length = 200
    LABELS = {
        "status": "status",
        "error_class": "error class",
        "system": "system",
        "flow_type": "flow",
        "step": "step",
        "assignee": "assignee",
        "cause": "root cause",
        "account": "account",
        "document": "document",
        "deal": "deal",
        "currency": "currency",
        "amount_min": "amount ≥",
        "amount_max": "amount ≤",
        "risk_min": "revenue at risk ≥",
        "retries": "retries",
        "age": "age",
        "records": "records",
        "month": "first seen in",
        "q": "search",
    }

    class Meta:
        model = SyncException
        fields = []

    def __init__(self, data=None, queryset=None, *, request=None):
        if queryset is None:
            queryset = SyncException.objects.select_related("assignee").defer(*_LIST_DEFERRED).annotate(deal_ref=F("flow_run__deal_id"))
        super().__init__(data, queryset, request=request)

    # --- filters --------------------------------------------------------------------------
    def filter_status(self, queryset, name, value):
        if value == ACTIVE:
            return queryset.filter(status__in=SyncException.OPEN_STATUSES)
        return queryset if value == ALL else queryset.filter(status=value)

    def filter_assignee(self, queryset, name, value):
        if value == "me":
            user = self.user
            return queryset.filter(assignee=user) if user is not None and user.is_authenticated else queryset.none()
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        return queryset.filter(assignee__username=value)

    def filter_retries(self, queryset, name, value):
        return queryset.filter(retries=0) if value == "0" else queryset.filter(retries__gte=int(value))

    def filter_age(self, queryset, name, value):
        now = timezone.now()
        youngest, oldest = _AGE_RANGES[value]
        if youngest is not None:
            queryset = queryset.filter(first_seen__lte=now - youngest)
        if oldest is not None:
            queryset = queryset.filter(first_seen__gt=now - oldest)
        return queryset

    def filter_records(self, queryset, name, value):
        return queryset.filter(step_name__in=writeback_steps())

    def filter_month(self, queryset, name, value):
        try:
            start = datetime.strptime(value, "%Y-%m").replace(tzinfo=timezone.get_current_timezone())
        except ValueError:
            return queryset.none()
        end = (start + timedelta(days=32)).replace(day=1)
        return queryset.filter(first_seen__gte=start, first_seen__lt=end)

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(document_number__istartswith=value) | Q(account_name__istartswith=value) | Q(message__icontains=value))

    def filter_sort(self, queryset, name, value):
        return queryset.order_by(value, "-id")

    # --- in words ---------------------------------------------------------------------------
    @property
    def is_filtered(self) -> bool:
        return any(name != "sort" for name in self.as_query())

    def describe(self) -> str:
        """The filter in words, for bulk jobs and exports."""
        status = dict(STATUS_CHOICES).get(self.data["status"], self.data["status"])
        parts = [f"status {status.lower()}"]
        parts += [f"{self.LABELS[name]} {value}" for name, value in self.as_query().items() if name not in ("status", "sort")]
        return ", ".join(parts)[:255]
