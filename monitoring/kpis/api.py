"""Monitoring API: KPIs."""

from __future__ import annotations

import zoneinfo
from contextlib import nullcontext

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from q2c_portal.api import has_perm

from .summary import kpi_summary
from .window import window_from_params


def _zone(name: str):
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"tz": f"“{name[:60]}” is not a time zone; use an IANA name such as Europe/Berlin."}) from None


# --- the response contract (DESIGN.md KPIs); the API answers exactly these keys ---------------
class OrderCycleTimeOut(serializers.Serializer):
    count = serializers.IntegerField(help_text="order activations completed (activated) in the window")
    p50_seconds = serializers.FloatField(allow_null=True, help_text="activated_at − closed_won_at, percentile_cont(0.5)")
    p90_seconds = serializers.FloatField(allow_null=True)
    p95_seconds = serializers.FloatField(allow_null=True)
    in_flight = serializers.IntegerField(help_text="order activations not yet activated, now")


class AmendmentsOut(serializers.Serializer):
    started = serializers.IntegerField(help_text="amendment flows started (requested) in the window")
    with_exception = serializers.IntegerField(help_text="… of which raised at least one exception")
    failure_rate = serializers.FloatField(allow_null=True, help_text="with_exception ÷ started (0–1)")
    first_pass_success_rate = serializers.FloatField(allow_null=True, help_text="completed without an exception ÷ started")
    completed = serializers.IntegerField(help_text="… of which completed so far")


class InvoiceSyncLagOut(serializers.Serializer):
    posted = serializers.IntegerField(help_text="invoices finalized in the window and posted to the ERP")
    p50_seconds = serializers.FloatField(allow_null=True, help_text="posted_at − finalized_at; unposted invoices count with their age")
    p95_seconds = serializers.FloatField(allow_null=True)
    unposted = serializers.IntegerField(help_text="finalized in the window, not posted yet")
    oldest_unposted_seconds = serializers.FloatField(allow_null=True)


class ExceptionsOut(serializers.Serializer):
    open = serializers.IntegerField(help_text="open or retrying now")
    by_error_class = serializers.DictField(child=serializers.IntegerField())
    by_system = serializers.DictField(child=serializers.IntegerField())
    by_flow = serializers.DictField(child=serializers.IntegerField())
    opened = serializers.IntegerField(help_text="first seen in the window")
    resolved = serializers.IntegerField(help_text="resolved in the window")
    mttr_seconds = serializers.FloatField(allow_null=True, help_text="mean resolved_at − first_seen of those resolved in the window")


class SlaFlowOut(serializers.Serializer):
    target_seconds = serializers.IntegerField()
    due = serializers.IntegerField(help_text="due in the window with a known outcome (finished, or past due)")
    met = serializers.IntegerField(help_text="finished by the due time")
    breached = serializers.IntegerField(help_text="due − met")
    at_risk = serializers.IntegerField(help_text="running now, past the at-risk share of the allowed time")
    compliance = serializers.FloatField(allow_null=True, help_text="met ÷ due (0–1)")


class MoneyOut(serializers.Serializer):
    currency = serializers.CharField(help_text="the reporting currency (ISO 4217)")
    amount = serializers.DecimalField(max_digits=20, decimal_places=2, coerce_to_string=True)


class RetriesOut(serializers.Serializer):
    total = serializers.IntegerField(help_text="attempts beyond the first, of steps started in the window")
    by_system = serializers.DictField(child=serializers.IntegerField())
    by_error_class = serializers.DictField(child=serializers.IntegerField())


class DuplicateRateOut(serializers.Serializer):
    conflicts = serializers.IntegerField(help_text="customer duplicate/conflict exceptions opened in the window")
    customers_synced = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class RenewalAccuracyOut(serializers.Serializer):
    due = serializers.IntegerField()
    completed_without_exception = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)


def money_field(help_text: str = ""):
    return serializers.DecimalField(max_digits=20, decimal_places=2, coerce_to_string=True, help_text=help_text)


class InFlightOut(serializers.Serializer):
    currency = serializers.CharField()
    amount = money_field("orders_amount + invoices_amount")
    orders = serializers.IntegerField(help_text="order activations not completed, now")
    orders_amount = money_field("their first-year contract value (recurring ARR + one-time fees)")
    invoices = serializers.IntegerField(help_text="invoices finalized and not posted, now")
    invoices_amount = money_field("their amount")


class ArrOut(serializers.Serializer):
    currency = serializers.CharField()
    amount = money_field("ARR of active subscriptions now: recurring lines normalised to a year")
    subscriptions = serializers.IntegerField()
    one_time_billed = money_field("one-time lines on invoices finalized in the window (never ARR)")
    usage_billed = money_field("usage lines on invoices finalized in the window (never ARR)")


class UnbilledArrOut(serializers.Serializer):
    currency = serializers.CharField()
    amount = money_field("ARR of active subscriptions past their first invoice date + 1 day with no finalized invoice")
    subscriptions = serializers.IntegerField()


class PaymentStateOut(serializers.Serializer):
    invoices = serializers.IntegerField()
    remaining = money_field("amount still to collect")
    credit_balance = money_field("paid beyond what was due")


class PaymentsOut(serializers.Serializer):
    currency = serializers.CharField()
    open = PaymentStateOut(help_text="nothing applied yet")
    partially_paid = PaymentStateOut(help_text="0 < applied < due (partial and under-payments)")
    paid = PaymentStateOut(help_text="applied = due")
    overpaid = PaymentStateOut(help_text="applied > due")
    receivable = money_field("open + partially paid amounts remaining")
    credit_balance = money_field("credit balance of overpaid invoices")


class CloseReadinessOut(serializers.Serializer):
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    label = serializers.CharField()
    in_close_window = serializers.BooleanField(help_text="the first 5 business days of a month: the previous month is closing")
    unposted = serializers.IntegerField(help_text="invoices finalized in the month and not posted")
    unposted_amount = money_field()
    unapplied_payments = serializers.IntegerField(help_text="payments received in the month and not applied")
    unapplied_amount = money_field()
    open_breaks = serializers.IntegerField(help_text="open reconciliation breaks first seen in the month")
    breaks_amount = money_field()
    currency = serializers.CharField()
    ready = serializers.BooleanField()


class WindowOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    entity = serializers.CharField(allow_null=True)
    currency = serializers.CharField(allow_null=True)


class UnconvertedOut(serializers.Serializer):
    currency = serializers.CharField()
    documents = serializers.IntegerField()


class KpiOut(serializers.Serializer):
    window = WindowOut()
    order_cycle_time = OrderCycleTimeOut()
    amendments = AmendmentsOut()
    invoice_sync_lag = InvoiceSyncLagOut()
    exceptions = ExceptionsOut()
    sla = serializers.DictField(child=SlaFlowOut(), help_text="per flow type with a policy")
    revenue_at_risk = MoneyOut()
    retries = RetriesOut()
    duplicate_rate = DuplicateRateOut()
    renewal_accuracy = RenewalAccuracyOut()
    records_out_of_date = serializers.IntegerField(help_text="flows whose money is in place but whose CRM status write-back failed (no revenue at risk)")
    dollars_in_flight = InFlightOut()
    arr = ArrOut()
    unbilled_arr = UnbilledArrOut()
    payments = PaymentsOut()
    close_readiness = CloseReadinessOut()
    unconverted = UnconvertedOut(
        many=True,
        help_text="currencies with money in scope and no reporting rate on the day: their amounts are left out of every money total above",
    )


def kpi_payload(summary: dict) -> dict:
    """Project the selectors' answer onto the contract (screens get a few more keys)."""
    data = KpiOut(summary).data
    data["window"] = summary["window"]  # echo the ISO strings exactly as computed
    return data


@extend_schema(
    summary="KPIs for a window",
    description="Order cycle time, amendment failures, invoice sync lag, exceptions, SLA, revenue at risk, retries, "
    "duplicate rate and renewal accuracy, as defined in DESIGN.md; and the money figures of docs/MONEY.md (records out of date, "
    "dollars in flight, ARR, unbilled ARR, payment states, month-end close readiness), all now at the reporting rate of the day. "
    "Window [start, end): dates are whole days in `tz` with the end day "
    "included; datetimes are instants with the end exclusive; only start: until now; only end: the 30 days up to it; default the last 30 days. "
    "A parameter that cannot be read answers 400 problem+json naming it. "
    "Percentiles are PostgreSQL percentile_cont (linear interpolation). Money is a decimal string in the reporting currency.",
    parameters=[
        OpenApiParameter("start", OpenApiTypes.STR, description="YYYY-MM-DD (midnight in tz) or an ISO 8601 datetime"),
        OpenApiParameter("end", OpenApiTypes.STR, description="YYYY-MM-DD, included (ends at the next midnight in tz), or an ISO 8601 datetime, exclusive"),
        OpenApiParameter("days", int, description="the last N days up to now (1–3660), without start/end"),
        OpenApiParameter("tz", str, description="IANA time zone the dates are days of (default: TIME_ZONE)"),
        OpenApiParameter("entity", str, description="legal entity code (ERP subsidiary)"),
        OpenApiParameter("currency", str, description="only documents in this ISO 4217 currency"),
    ],
    responses={200: KpiOut},
)
@api_view(["GET"])
@permission_classes([has_perm("monitoring.view_kpis")])
def kpi_view(request):
    params = request.query_params
    tz_name = params.get("tz", "").strip()
    zone = _zone(tz_name) if tz_name else None
    with timezone.override(zone) if zone else nullcontext():
        choice = window_from_params(params, tz=zone)
        if choice.errors:
            raise ValidationError(choice.errors)
        return Response(kpi_payload(kpi_summary(choice.window)))
