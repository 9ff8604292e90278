"""The API's flow-run list filter (GET /api/v1/flows/) as a FilterSet. Each parameter is an exact
match on the value as given (unknown statuses or flow types match nothing); correlation_id
must be a UUID."""

from __future__ import annotations

import django_filters

from sync.models import FlowRun


class FlowRunApiFilterSet(django_filters.FilterSet):
    correlation_id = django_filters.UUIDFilter(strip=False, error_messages={"invalid": "Must be a UUID."})
    document_number = django_filters.CharFilter(strip=False)
    deal_id = django_filters.CharFilter(strip=False)
    flow_type = django_filters.CharFilter(strip=False)
    status = django_filters.CharFilter(strip=False)

    class Meta:
        model = FlowRun
        fields = []
