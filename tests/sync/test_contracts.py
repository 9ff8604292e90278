"""Event contracts that evolve (issue 15 item 5): the order.closed_won v1 → v2 upcaster as a pure
function, and the registry of versions and statuses (sync/canonical/contracts.py). No database."""

from __future__ import annotations

import copy
from datetime import date

import pytest

from sync.canonical import contracts
from sync.canonical.charges import ChargeError, charge_of
from sync.canonical.events import validate_envelope
from sync.canonical.lifecycle import CURRENT, DEPRECATED, lifecycle_problems
from sync.canonical.upcasters import UPCASTERS, order_closed_won_v1_to_v2

V1 = {
    "order_number": "ORD-UP-1",
    "opportunity_id": "006A000001",
    "crm_record_id": "801A000001",
    "account": {"external_id": "001UP", "name": "Upcast Ltd", "email": "ap@upcast.example"},
    "currency": "USD",
    "legal_entity": "US01",
    "closed_won_at": "2026-11-23T10:00:00Z",
    "effective_date": "2026-11-23",
    "total_amount": "2950.00",
    "lines": [
        {
            "sku": "PLAT-SEAT",
            "description": "Seats",
            "quantity": "25",
            "unit_price": "40.00",
            "billing": "recurring",
            "interval": "month",
            "crm_line_id": "802A",
        },
        {"sku": "SUP", "quantity": "1", "unit_price": "300.00", "billing": "recurring", "interval": "month", "interval_count": 3},
        {"sku": "ONBOARD-FEE", "quantity": "1", "unit_price": "1500.00", "billing": "one_time"},
        {"sku": "API-CALLS", "quantity": "1", "unit_price": "0.50", "billing": "usage", "interval": "month"},
    ],
}
V2 = {
    "order_number": "ORD-UP-1",
    "deal_id": "006A000001",
    "crm_record_id": "801A000001",
    "account": {"external_id": "001UP", "name": "Upcast Ltd", "email": "ap@upcast.example"},
    "currency": "USD",
    "legal_entity": "US01",
    "closed_won_at": "2026-11-23T10:00:00Z",
    "effective_date": "2026-11-23",
    "total_amount": "2950.00",
    "lines": [
        {
            "sku": "PLAT-SEAT",
            "description": "Seats",
            "quantity": "25",
            "unit_price": "40.00",
            "charge_type": "recurring",
            "interval": "month",
            "crm_line_id": "802A",
        },
        {"sku": "SUP", "quantity": "1", "unit_price": "300.00", "charge_type": "recurring", "interval": "month", "interval_count": 3},
        {"sku": "ONBOARD-FEE", "quantity": "1", "unit_price": "1500.00", "charge_type": "one_time"},
        {"sku": "API-CALLS", "quantity": "1", "unit_price": "0.50", "charge_type": "usage", "interval": "month"},
    ],
}


def envelope(event_type: str, data: dict) -> dict:
    return {"id": "evt-up-1", "type": event_type, "source": "crm-relay", "occurred_at": "2026-11-23T10:00:00Z", "data": data}


# --- the upcaster ---------------------------------------------------------------------------------
def test_the_v1_to_v2_upcaster_renames_every_v1_fact_and_guesses_nothing():
    sent = copy.deepcopy(V1)
    assert order_closed_won_v1_to_v2(sent) == V2
    assert sent == V1  # the input is never changed
    assert order_closed_won_v1_to_v2(sent) == order_closed_won_v1_to_v2(copy.deepcopy(V1))  # deterministic
    assert validate_envelope(envelope("order.closed_won.v1", V1)) == []
    assert validate_envelope(envelope("order.closed_won.v2", V2)) == []  # a valid v1 becomes a valid v2


def test_the_upcast_charge_types_are_what_the_flows_read_from_v1():
    upcast = order_closed_won_v1_to_v2(V1)
    assert [charge_of(line, i) for i, line in enumerate(upcast["lines"])] == [charge_of(line, i) for i, line in enumerate(V1["lines"])]


def test_a_v1_without_an_opportunity_has_no_deal_id_and_v1_extras_with_v2_names_are_not_read_as_v2():
    data = {k: v for k, v in V1.items() if k != "opportunity_id"}
    data = {**data, "deal_id": 42, "tax_lines": "not v1", "lines": [{**V1["lines"][2], "charge_type": "usage"}]}
    upcast = order_closed_won_v1_to_v2(data)
    assert "deal_id" not in upcast and "tax_lines" not in upcast
    assert upcast["lines"] == [{"sku": "ONBOARD-FEE", "quantity": "1", "unit_price": "1500.00", "charge_type": "one_time"}]  # v1's billing decides


@pytest.mark.parametrize(
    "line",
    [
        {"sku": "LEGACY-42", "quantity": "1", "unit_price": "120.00"},  # no billing
        {"sku": "LEGACY-44", "quantity": "1", "unit_price": "120.00", "billing": "recurring"},  # recurring without interval
    ],
)
def test_a_v1_line_whose_charge_cannot_be_known_stays_as_sent_for_the_flow_to_refuse(line):
    upcast = order_closed_won_v1_to_v2({**V1, "lines": [line]})
    assert upcast["lines"] == [line]
    with pytest.raises(ChargeError) as refused:
        charge_of(upcast["lines"][0], 0)
    assert refused.value.field in ("lines[0].billing", "lines[0].interval")  # the v1 field the sender must fix


def test_upcast_gives_the_current_version_and_leaves_the_current_one_alone():
    v1 = envelope("order.closed_won.v1", V1)
    v2 = contracts.upcast(v1)
    assert v2 == {**v1, "type": "order.closed_won.v2", "data": V2}
    assert v1["type"] == "order.closed_won.v1"
    assert contracts.upcast(v2) is v2
    assert contracts.upcast_data("order.closed_won.v2", V2) is V2
    invoice = envelope("invoice.finalized.v1", {"invoice_number": "INV-1"})
    assert contracts.upcast(invoice) is invoice


# --- the registry ---------------------------------------------------------------------------------
def test_each_version_has_a_status_and_every_older_one_an_upcaster_to_the_current():
    registry = contracts.contracts()
    v1, v2 = registry["order.closed_won.v1"], registry["order.closed_won.v2"]
    assert (v1.status, v1.sunset, v1.current) == (DEPRECATED, date(2027, 7, 1), "order.closed_won.v2")
    assert (v2.status, v2.sunset, v2.current) == (CURRENT, None, "order.closed_won.v2")
    assert v1.accepted_on(date(2027, 6, 30)) and not v1.accepted_on(date(2027, 7, 1))
    assert lifecycle_problems(registry) == []
    for c in registry.values():
        assert (c.status == CURRENT) == (c.name == c.current)
        for version in range(c.version, int(c.current.rsplit(".v", 1)[1])):
            assert (c.family, version) in UPCASTERS, f"{c.family}.v{version} has no upcaster"
