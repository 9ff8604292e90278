"""Pure units: money in minor ↔ major units, timestamps, Stripe's form encoding (signatures: test_webhook_signature)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxes.stripe.params import decode, encode
from sync.connectors.stripe import mapper
from sync.connectors.stripe.mapper import MappingError

CURRENCIES = st.sampled_from(["USD", "EUR", "GBP", "JPY", "KRW", "CLP", "VND", "KWD", "BHD", "usd", "jpy"])
AMOUNT_PATTERN = r"^-?\d{1,14}(\.\d{1,4})?$"


@given(minor=st.integers(min_value=-(10**12), max_value=10**12), currency=CURRENCIES)
def test_minor_units_survive_a_round_trip_through_major_units(minor, currency):
    major = mapper.to_major(minor, currency)
    assert mapper.to_minor(major, currency) == minor
    assert Decimal(major) == Decimal(minor) / 10 ** mapper.exponent(currency)


@given(minor=st.integers(min_value=0, max_value=10**12), currency=CURRENCIES)
def test_major_units_have_the_currencys_decimals_and_match_the_schema(minor, currency):
    import re

    major = mapper.to_major(minor, currency)
    places = mapper.exponent(currency)
    assert re.match(AMOUNT_PATTERN, major)
    assert (len(major.partition(".")[2]) if "." in major else 0) == places


def test_zero_decimal_and_three_decimal_currencies():
    assert mapper.to_minor("5000", "JPY") == 5000 and mapper.to_major(5000, "JPY") == "5000"
    assert mapper.to_minor("12.34", "USD") == 1234 and mapper.to_major(1234, "usd") == "12.34"
    assert mapper.to_minor("1.234", "KWD") == 1234 and mapper.to_major(1234, "KWD") == "1.234"
    with pytest.raises(MappingError):
        mapper.to_minor("10.5", "JPY")
    with pytest.raises(MappingError):
        mapper.to_minor("0.001", "USD")


@given(st.decimals(min_value=Decimal(0), max_value=Decimal(1000000), places=4, allow_nan=False, allow_infinity=False), CURRENCIES)
def test_unit_prices_with_more_decimals_go_as_unit_amount_decimal(amount, currency):
    minor_decimal = mapper.to_minor_decimal(amount, currency)
    assert Decimal(minor_decimal) == amount * 10 ** mapper.exponent(currency)


@given(st.integers(min_value=0, max_value=4102444800))
def test_timestamps_round_trip_through_iso_8601_utc(ts):
    iso = mapper.ts_to_iso(ts)
    assert iso.endswith("Z")
    assert mapper.to_ts(iso) == ts
    assert mapper.to_ts(datetime.fromtimestamp(ts, tz=UTC)) == ts


def test_naive_datetimes_are_taken_as_utc():
    assert mapper.to_ts(datetime(2025, 4, 1, 9, 33, 20)) == 1743500000
    assert mapper.ts_to_iso(1743500000) == "2025-04-01T09:33:20Z"


def test_nested_form_parameters_decode_like_stripe_reads_them():
    body = (
        "customer=cus_1&items[0][price_data][currency]=usd&items[0][price_data][recurring][interval]=month&items[0][quantity]=3"
        "&items[1][id]=si_1&items[1][deleted]=true&metadata[order_number]=SO-1&expand[]=latest_invoice&expand[]=customer"
    )
    assert decode(body) == {
        "customer": "cus_1",
        "items": [{"price_data": {"currency": "usd", "recurring": {"interval": "month"}}, "quantity": "3"}, {"id": "si_1", "deleted": "true"}],
        "metadata": {"order_number": "SO-1"},
        "expand": ["latest_invoice", "customer"],
    }


@given(
    st.recursive(
        st.text(alphabet="abcxyz019 .-", max_size=8),
        lambda children: st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=6), children, min_size=1, max_size=3),
        max_leaves=10,
    )
)
def test_encode_and_decode_are_inverse_for_nested_hashes(value):
    from urllib.parse import urlencode

    params = {"root": value}
    assert decode(urlencode(encode(params))) == params
