"""Mapper properties: money and dates survive the trip from Salesforce JSON to canonical strings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.connectors.errors import ConnectorError
from sync.connectors.salesforce import mapper

amounts = st.decimals(min_value=Decimal("-99999999999.9999"), max_value=Decimal("99999999999.9999"), places=4, allow_nan=False, allow_infinity=False)
cents = st.decimals(min_value=Decimal("0"), max_value=Decimal("9999999999.99"), places=2, allow_nan=False, allow_infinity=False)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(amounts)
def test_money_is_the_exact_amount_salesforce_sent_as_a_json_number(amount):
    sent = json.loads(json.dumps(float(amount)))  # what Salesforce's JSON number parses to

    text = mapper.money(sent)

    assert Decimal(text) == Decimal(str(sent))
    assert len(text.split(".")[1]) in (2, 4)


@given(cents, st.integers(min_value=1, max_value=10000))
def test_line_totals_are_exact_in_decimal(unit_price, qty):
    line = mapper.line_of(
        {
            "Quantity": float(qty),
            "UnitPrice": float(unit_price),
            "Product2": {"ProductCode": "SKU-1", "SBQQ__ChargeType__c": "Recurring", "SBQQ__BillingFrequency__c": "Monthly"},
        }
    )

    assert Decimal(line["unit_price"]) == unit_price
    assert Decimal(line["quantity"]) * Decimal(line["unit_price"]) == qty * unit_price


@given(moments)
def test_salesforce_rest_and_cdc_timestamps_are_the_same_instant(moment):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    rest = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    cdc = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    epoch_ms = mapper.epoch_ms(moment)

    assert mapper.parse_datetime(rest) == mapper.parse_datetime(cdc) == mapper.parse_datetime(epoch_ms) == moment
    assert datetime.fromisoformat(mapper.iso(rest)) == moment


@given(moments)
def test_soql_datetime_literal_round_trips(moment):
    literal = mapper.sf_datetime(moment)

    assert literal.endswith("Z")
    assert abs(mapper.parse_datetime(literal) - moment) < timedelta(milliseconds=1)


@given(st.dates(), st.integers(min_value=1, max_value=120))
def test_term_months_of_a_contract_period(start, months):
    from sandboxes.salesforce.store import _add_months

    try:
        end = _add_months(start, months) - timedelta(days=1)
    except (OverflowError, ValueError):
        return
    assert mapper.months_between(start.isoformat(), end.isoformat()) == months


def test_bad_values_are_mapping_errors_naming_the_field():
    with pytest.raises(ConnectorError) as negative:
        mapper.quantity(-1)
    with pytest.raises(ConnectorError) as text:
        mapper.money("12,50", field="unit_price")
    with pytest.raises(ConnectorError) as precise:
        mapper.money(1.23456, field="unit_price")

    assert negative.value.error_class == "mapping" and negative.value.field == "quantity"
    assert text.value.field == "unit_price" and "not a number" in text.value.message
    assert "more than 4 decimal places" in precise.value.message


@pytest.mark.parametrize(
    "product, expected",
    [
        ({"SBQQ__ChargeType__c": "Recurring", "SBQQ__BillingFrequency__c": "Annual"}, {"billing": "recurring", "interval": "year"}),
        ({"SBQQ__ChargeType__c": "Recurring", "SBQQ__BillingFrequency__c": "Quarterly"}, {"billing": "recurring", "interval": "month", "interval_count": 3}),
        ({"SBQQ__ChargeType__c": "One-Time"}, {"billing": "one_time"}),
        ({"SBQQ__ChargeType__c": "Usage", "SBQQ__BillingFrequency__c": "Monthly"}, {"billing": "usage", "interval": "month"}),
        ({"SBQQ__ChargeType__c": "Recurring", "SBQQ__BillingFrequency__c": "Monthly"}, {"billing": "recurring", "interval": "month"}),
    ],
)
def test_billing_follows_the_product(product, expected):
    assert mapper.billing_of(product) == expected


@pytest.mark.parametrize(
    "product, words",
    [
        # issue 11: the family used to be guessed from ("Services" → one-time, anything else → monthly)
        ({"ProductCode": "ONBOARD-FEE", "Name": "Onboarding fee", "Family": "Services"}, "ONBOARD-FEE (Onboarding fee) has no charge type"),
        ({"ProductCode": "LEGACY-42", "Family": "Subscription"}, "LEGACY-42 has no charge type"),
        ({"ProductCode": "X-1", "SBQQ__ChargeType__c": "Milestone"}, "unknown charge type 'Milestone'"),
        ({"ProductCode": "X-2", "SBQQ__ChargeType__c": "Recurring"}, "has no billing frequency"),
    ],
)
def test_a_product_that_does_not_say_how_it_bills_is_a_mapping_error_naming_it(product, words):
    with pytest.raises(ConnectorError) as refused:
        mapper.billing_of(product)
    assert refused.value.error_class == "mapping" and words in refused.value.message
    assert refused.value.field.startswith("Product2.SBQQ__")
