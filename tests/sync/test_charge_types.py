"""Order lines must say how they bill (issue 11): no charge type is a mapping exception naming the
product, in business terms — never a guess. Runs the flow's hub step in-process."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from django.core.management import call_command

from sync.engine import runner
from sync.flows.registry import flow_for
from sync.models import FlowType, SyncException

pytestmark = pytest.mark.django_db


def order(lines: list[dict]) -> dict:
    return {
        "id": "evt-charge-1",
        "type": "order.closed_won.v1",
        "source": "crm-relay",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {
            "order_number": "ORD-CT-1",
            "account": {"external_id": "001CT", "name": "Soylent Foods"},
            "currency": "USD",
            "legal_entity": "US01",
            "closed_won_at": "2026-11-23T10:00:00Z",
            "lines": lines,
        },
    }


@pytest.mark.parametrize(
    "bad, words, field",
    [
        (
            {"sku": "LEGACY-42", "description": "Legacy add-on", "quantity": "1", "unit_price": "120.00"},
            "LEGACY-42 (Legacy add-on) has no charge type",
            "lines[1].billing",
        ),
        ({"sku": "LEGACY-43", "quantity": "1", "unit_price": "120.00", "billing": "milestone"}, "unknown charge type 'milestone'", "lines[1].billing"),
        ({"sku": "LEGACY-44", "quantity": "1", "unit_price": "120.00", "billing": "recurring"}, "LEGACY-44 has no billing interval", "lines[1].interval"),
    ],
)
def test_a_line_without_a_known_charge_type_is_a_mapping_exception_naming_the_product(bad, words, field):
    call_command("seed_reference_data", stdout=open(os.devnull, "w"))
    seats = {"sku": "PLAT-SEAT", "quantity": "10", "unit_price": "45.00", "billing": "recurring", "interval": "month"}
    run, _ = runner.flow_start(flow=flow_for(FlowType.ORDER_ACTIVATION), envelope=order([seats, bad]))

    assert runner.flow_run(run.pk) == "failed"

    exc = SyncException.objects.get(flow_run=run)
    assert exc.error_class == "mapping" and words in exc.message and exc.field == field
    assert (exc.document_number, exc.account_name) == ("ORD-CT-1", "Soylent Foods")
    # first-year value at risk: 10 × 45 × 12 recurring, and the unknown line once at 120.00
    assert exc.revenue_at_risk == Decimal("5520.00")
    assert run.steps.get(name="erp_sales_order").status == "pending"  # nothing reached the ERP or billing


def test_first_year_value_and_arr_follow_the_charge_types():
    from sync.canonical.charges import arr, first_year_value

    lines = [
        {"sku": "PLAT-SEAT", "quantity": "10", "unit_price": "45.00", "billing": "recurring", "interval": "month"},
        {"sku": "SUP", "quantity": "1", "unit_price": "300.00", "billing": "recurring", "interval": "month", "interval_count": 3},  # quarterly
        {"sku": "PLAT-ENT", "quantity": "1", "unit_price": "24000.00", "billing": "recurring", "interval": "year"},
        {"sku": "ONBOARD-FEE", "quantity": "1", "unit_price": "2500.00", "billing": "one_time"},
        {"sku": "API-CALLS", "quantity": "1000", "unit_price": "0.50", "billing": "usage", "interval": "month"},
    ]
    assert arr(lines) == Decimal("5400.00") + Decimal("1200.00") + Decimal("24000.00")
    assert first_year_value(lines) == Decimal("30600.00") + Decimal("2500.00")
