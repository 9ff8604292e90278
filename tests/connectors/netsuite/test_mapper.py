"""mapper.py: canonical → NetSuite body → (NetSuite's JSON) → canonical, for money and dates.

Pure functions, no server: what the round trip must preserve is exact money (Decimal with
2–4 decimals, never a float on the way) and calendar dates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from sync.connectors.netsuite import mapper, wire

ITEM_IDS = {"PLAT-SEAT": "11", "PLAT-API": "12", "SUPPORT-PREM": "13"}
SKUS = {v: k for k, v in ITEM_IDS.items()}

money = st.builds(
    lambda units, places, frac: Decimal(units) + (Decimal(frac % (10**places)) / Decimal(10) ** places).quantize(Decimal(1).scaleb(-places)),
    st.integers(min_value=0, max_value=10**14 - 1),
    st.integers(min_value=2, max_value=4),
    st.integers(min_value=0, max_value=9999),
)
quantities = st.integers(min_value=1, max_value=100_000).map(lambda n: Decimal(n))
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))


def as_netsuite_returns(body: dict, *, internal_id: str = "501") -> dict:
    """What GET ?expandSubResources=true gives back for a body NetSuite accepted: the JSON
    round trip, references as objects with refName, lines numbered, the total summed."""
    record = wire.loads(wire.dumps(body))
    lines = record["item"]["items"]
    for number, line in enumerate(lines, start=1):
        line.update(line=number, isClosed=False, item={**line["item"], "refName": SKUS[line["item"]["id"]]})
    record.update(id=internal_id, status={"id": "B", "refName": "Pending Fulfillment"}, total=sum(Decimal(str(l["amount"])) for l in lines))
    return record


def order(lines: list[tuple[str, Decimal, Decimal]], **extra) -> dict:
    return {
        "order_number": "ORD-9",
        "account": {"external_id": "A1", "name": "Acme"},
        "currency": "EUR",
        "closed_won_at": "2026-01-31T22:15:00Z",
        "lines": [{"sku": sku, "quantity": str(q), "unit_price": str(p)} for sku, q, p in lines],
        **extra,
    }


@hsettings(max_examples=200, deadline=None)
@given(prices=st.lists(st.tuples(st.sampled_from(sorted(ITEM_IDS)), quantities, money), min_size=1, max_size=6))
def test_order_money_survives_the_round_trip_exactly(prices):
    body = mapper.sales_order_body(order(prices), customer_id="7", item_ids=ITEM_IDS, currency_id="4", subsidiary_id="3", external_id="SO-9")
    back = mapper.sales_order_from_netsuite(as_netsuite_returns(body), skus_by_item_id=SKUS, currency_code="EUR")
    assert [(l["sku"], Decimal(l["quantity"]), l["unit_price"]) for l in back["lines"]] == [(s, q, str(p)) for s, q, p in prices]
    assert Decimal(back["total"]) == sum((q * p).quantize(Decimal("0.01"), "ROUND_HALF_UP") for _, q, p in prices)
    assert back["currency"] == "EUR"


@hsettings(max_examples=200, deadline=None)
@given(amount=money)
def test_amounts_never_pass_through_float(amount):
    text = wire.dumps({"rate": amount})
    assert text == '{"rate":' + format(amount, "f") + "}"
    assert wire.loads(text)["rate"] == amount
    assert mapper.money_str(wire.loads(text)["rate"]) == str(amount)


@hsettings(max_examples=200, deadline=None)
@given(day=dates)
def test_an_effective_date_is_the_transaction_date_and_back(day):
    body = mapper.sales_order_body(
        order([("PLAT-SEAT", Decimal(1), Decimal("45.00"))], effective_date=day.isoformat()),
        customer_id="7",
        item_ids=ITEM_IDS,
        currency_id="4",
        subsidiary_id=None,
        external_id="SO-9",
    )
    assert body["tranDate"] == day.isoformat()
    assert mapper.sales_order_from_netsuite(as_netsuite_returns(body), skus_by_item_id=SKUS, currency_code="EUR")["effective_date"] == day.isoformat()


@hsettings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2099, 1, 1),
        timezones=st.sampled_from([UTC, dt_timezone(timedelta(hours=-5)), dt_timezone(timedelta(hours=9, minutes=30))]),
    )
)
def test_a_moment_becomes_its_utc_calendar_day(moment):
    invoice = {
        "invoice_number": "INV-1",
        "currency": "USD",
        "total": "1.00",
        "finalized_at": moment.isoformat(),
        "lines": [{"sku": "PLAT-API", "description": "API", "amount": "1.00"}],
    }
    body = mapper.invoice_body(invoice, customer_id="7", item_ids=ITEM_IDS, currency_id="1", subsidiary_id="1", external_id="INV-1")
    assert body["tranDate"] == moment.astimezone(UTC).date().isoformat()


@hsettings(max_examples=200, deadline=None)
@given(lines=st.lists(st.tuples(st.sampled_from(sorted(ITEM_IDS)), quantities, money, money), min_size=1, max_size=5))
def test_invoice_lines_survive_the_round_trip(lines):
    invoice = {
        "invoice_number": "INV-2",
        "currency": "GBP",
        "total": "0",
        "finalized_at": "2026-03-01T00:00:00Z",
        "due_date": "2026-03-31",
        "lines": [{"sku": s, "description": f"line {i}", "quantity": str(q), "unit_amount": str(u), "amount": str(a)} for i, (s, q, u, a) in enumerate(lines)],
    }
    body = mapper.invoice_body(invoice, customer_id="7", item_ids=ITEM_IDS, currency_id="2", subsidiary_id="2", external_id="INV-2")
    back = mapper.invoice_from_netsuite(as_netsuite_returns(body), skus_by_item_id=SKUS, currency_code="GBP")
    assert [(l["sku"], Decimal(l["quantity"]), l["unit_amount"], l["amount"]) for l in back["lines"]] == [(s, q, str(u), str(a)) for s, q, u, a in lines]
    assert (back["invoice_number"], back["due_date"], back["currency"]) == ("INV-2", "2026-03-31", "GBP")
    assert Decimal(back["total"]) == sum(a for *_, a in lines)


def test_netsuite_whole_numbers_read_back_with_cents():
    assert mapper.money_str(Decimal(45)) == "45.00"
    assert mapper.money_str(45) == "45.00"
    assert mapper.money_str(Decimal("0.012345")) == "0.0123"


def test_a_customer_from_the_crm_event_maps_name_email_subsidiary_and_currency():
    body = mapper.customer_body(
        {"account": {"external_id": "001X", "name": "Initech", "email": "ap@initech.example", "tax_id": "DE123"}, "currency": "EUR"},
        subsidiary_id="3",
        currency_id="4",
    )
    assert body == {
        "companyName": "Initech",
        "isPerson": False,
        "email": "ap@initech.example",
        "vatRegNumber": "DE123",
        "subsidiary": {"id": "3"},
        "currency": {"id": "4"},
    }
    assert mapper.customer_from_netsuite({"id": "9", "externalId": "C-1", **body}, currency_code="EUR")["name"] == "Initech"


def test_a_payment_is_applied_to_its_invoice():
    body = mapper.payment_body(
        {"payment_id": "pi_1", "invoice_number": "INV-1", "amount": "99.95", "currency": "USD", "received_at": "2026-02-28T23:59:59Z"},
        customer_id="7",
        currency_id="1",
        invoice_id="55",
        external_id="PAY-1",
    )
    assert body["apply"] == {"items": [{"doc": {"id": "55"}, "apply": True, "amount": Decimal("99.95")}]}
    assert (body["payment"], body["tranDate"]) == (Decimal("99.95"), "2026-02-28")


def test_a_bad_amount_is_a_mapping_error_naming_the_field():
    with pytest.raises(mapper.MappingError) as caught:
        mapper.sales_order_body(
            {**order([]), "lines": [{"sku": "PLAT-SEAT", "quantity": "1", "unit_price": "a lot"}]},
            customer_id="7",
            item_ids=ITEM_IDS,
            currency_id="1",
            subsidiary_id=None,
            external_id="SO-1",
        )
    assert caught.value.field == "lines[0].unit_price"
