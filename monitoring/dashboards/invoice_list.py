"""The Invoices page's list of invoice documents with their payment state (docs/MONEY.md): what
was due, paid and remains, and the credit balance of an overpayment. Its parameters are its own
(`state`, `invoice`, `isort`, `ipage`) so it lives beside the flow list on the same page; the
entity and currency come from the page's window. Every filter is an indexed column."""

from __future__ import annotations

import django_filters
from django.db.models import DecimalField, ExpressionWrapper, F

from monitoring.filtering import QueryFilterSet
from sync.models import Invoice

STATES = [
    ("open", "open (nothing paid)"),
    ("partially_paid", "partially paid"),
    ("paid", "paid"),
    ("overpaid", "overpaid (credit balance)"),
    ("uncollectible", "uncollectible"),
    ("void", "void"),
]
SORTS = [("-finalized_at", "Newest first"), ("finalized_at", "Oldest first"), ("-amount_remaining", "Most remaining"), ("-total", "Largest total")]


class InvoiceFilterSet(QueryFilterSet):
    state = django_filters.ChoiceFilter(choices=STATES, field_name="status")
    invoice = django_filters.CharFilter(field_name="number", lookup_expr="istartswith")
    isort = django_filters.ChoiceFilter(choices=SORTS, method="filter_sort", required=True)

    defaults = {"isort": "-finalized_at"}
    max_length = 64

    class Meta:
        model = Invoice
        fields = []

    def __init__(self, data=None, *, window=None, request=None):
        queryset = (
            Invoice.objects.filter(finalized_at__isnull=False)
            .select_related("customer", "legal_entity", "subscription__order")
            .annotate(
                credit=ExpressionWrapper(F("amount_paid") - (F("total") - F("amount_credited")), output_field=DecimalField(max_digits=18, decimal_places=4))
            )
        )
        if window is not None and window.entity:
            queryset = queryset.filter(legal_entity__code=window.entity)
        if window is not None and window.currency:
            queryset = queryset.filter(currency=window.currency)
        super().__init__(data, queryset, request=request)

    def filter_sort(self, queryset, name, value):
        return queryset.order_by(F(value.lstrip("-")).desc(nulls_last=True) if value.startswith("-") else F(value).asc(nulls_last=True), "-id")
