"""NetSuiteConnector against the sandbox server: idempotent writes, lookups, errors, rate limits."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from sandboxes.netsuite.models import ExternalIdLedger, Record
from sync.connectors.errors import ConnectorError
from sync.models import ConnectorCall, ErrorClass, LegalEntity

pytestmark = pytest.mark.django_db(transaction=True)


def an_order(**overrides) -> dict:
    return {
        "order_number": "ORD-2001",
        "account": {"external_id": "001ACME", "name": "Acme Corp"},
        "currency": "USD",
        "closed_won_at": "2026-05-04T23:30:00-04:00",
        "erp_subsidiary_id": "1",
        "lines": [
            {"sku": "PLAT-SEAT", "quantity": "25", "unit_price": "45.00", "description": "Seats"},
            {"sku": "ONBOARD-FEE", "quantity": "1", "unit_price": "2500.00", "billing": "one_time"},
        ],
        **overrides,
    }


@pytest.fixture
def customer_id(netsuite) -> str:
    return netsuite.upsert_customer(
        customer={"account": {"external_id": "001ACME", "name": "Acme Corp"}, "currency": "USD", "erp_subsidiary_id": "1"}, external_id="HUB-CUS-ACME"
    ).external_id


def test_a_retried_sales_order_is_exactly_one_sales_order_in_netsuite(netsuite, customer_id):
    for _ in range(3):
        netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2001")
    assert Record.objects.filter(record_type="salesOrder", external_id="HUB-SO-2001").count() == 1
    ledger = ExternalIdLedger.objects.get(record_type="salesOrder", external_id="HUB-SO-2001")
    assert (ledger.creates, ledger.updates) == (1, 2)


def test_an_upsert_replaces_the_lines_rather_than_adding_them(netsuite, customer_id):
    netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2002")
    netsuite.upsert_sales_order(
        order=an_order(lines=[{"sku": "PLAT-SEAT", "quantity": "30", "unit_price": "45.00"}]), customer_id=customer_id, external_id="HUB-SO-2002"
    )
    order = netsuite.get_sales_order(external_id="HUB-SO-2002")
    assert [(line["sku"], line["quantity"]) for line in order["lines"]] == [("PLAT-SEAT", "30")]
    assert order["total"] == "1350.00"


def test_the_sales_order_carries_customer_subsidiary_currency_and_date(netsuite, customer_id):
    LegalEntity.objects.create(code="UK01", name="Q2C UK Ltd", base_currency="GBP", erp_subsidiary_id="2")
    netsuite.upsert_sales_order(order=an_order(erp_subsidiary_id=None, legal_entity="UK01", currency="GBP"), customer_id=customer_id, external_id="HUB-SO-2003")
    record = Record.objects.get(record_type="salesOrder", external_id="HUB-SO-2003").data
    assert record["entity"] == {"id": customer_id}
    assert record["subsidiary"] == {"id": "2"}
    assert record["currency"] == {"id": "2"}  # GBP
    assert record["tranDate"] == "2026-05-05"  # 23:30 in New York is the 5th in UTC
    assert record["tranId"] == "ORD-2001"
    assert record["total"] == Decimal("3625.00")


def test_an_unknown_sku_is_a_mapping_error_and_nothing_is_written(netsuite, customer_id):
    order = an_order(lines=[{"sku": "PLAT-SEAT", "quantity": "1", "unit_price": "45"}, {"sku": "GOLD-PLAN", "quantity": "1", "unit_price": "9"}])
    with pytest.raises(ConnectorError) as caught:
        netsuite.upsert_sales_order(order=order, customer_id=customer_id, external_id="HUB-SO-2004")
    assert caught.value.error_class == ErrorClass.MAPPING
    assert "GOLD-PLAN" in caught.value.message
    assert caught.value.field == "lines[1].sku"
    assert not Record.objects.filter(record_type="salesOrder").exists()


def test_skus_are_resolved_once_per_connector(netsuite, customer_id):
    netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2005")
    before = ConnectorCall.objects.filter(system="netsuite", operation="suiteql").count()
    netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2006")
    assert ConnectorCall.objects.filter(system="netsuite", operation="suiteql").count() == before


def test_a_netsuite_validation_error_names_the_field_and_keeps_netsuites_words(netsuite, netsuite_server, customer_id):
    netsuite_server.faults(fail_records=["ONBOARD-FEE"])
    with pytest.raises(ConnectorError) as caught:
        netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2007")
    error = caught.value
    assert (error.error_class, error.status_code, error.code, error.field) == (ErrorClass.VALIDATION, 400, "INVALID_CONTENT", "item.items[1].item")
    assert "Invalid Field Value" in error.message
    assert not error.transient


def test_a_missing_customer_reference_is_a_validation_error(netsuite):
    with pytest.raises(ConnectorError) as caught:
        netsuite.upsert_sales_order(order=an_order(), customer_id="987654", external_id="HUB-SO-2008")
    assert (caught.value.error_class, caught.value.field) == (ErrorClass.VALIDATION, "entity")


def test_a_429_with_retry_after_2_is_waited_out_and_succeeds(netsuite, netsuite_server, customer_id):
    netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2009")  # warm the SKU cache
    netsuite_server.faults(rate_limit_retry_after=2, rate_limit_requests=1)
    started = time.monotonic()
    result = netsuite.upsert_sales_order(order=an_order(order_number="ORD-2010"), customer_id=customer_id, external_id="HUB-SO-2010")
    assert time.monotonic() - started >= 2
    assert netsuite.get_sales_order(external_id="HUB-SO-2010")["id"] == result.external_id
    statuses = list(ConnectorCall.objects.filter(system="netsuite", operation="upsert salesOrder").order_by("id").values_list("status_code", flat=True))
    assert statuses[-2:] == [429, 204]


def test_the_sandbox_429_is_in_netsuites_error_shape(raw, netsuite_server):
    netsuite_server.faults(rate_limit_retry_after=2, rate_limit_requests=1)
    response = raw.get(f"{raw.base}/record/v1/subsidiary/1")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["o:errorDetails"][0]["o:errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_an_outage_is_unavailable_and_transient(netsuite, netsuite_server):
    netsuite_server.faults(outage=True)
    with pytest.raises(ConnectorError) as caught:
        netsuite.get_sales_order(external_id="HUB-SO-1")
    assert (caught.value.error_class, caught.value.status_code) == (ErrorClass.UNAVAILABLE, 503)
    assert caught.value.transient


def test_an_unreachable_netsuite_is_unavailable(settings):
    from sync.connectors.netsuite.client import NetSuiteConnector

    connector = NetSuiteConnector(**{**settings.CONNECTORS["netsuite"], "base_url": "http://127.0.0.1:9"})
    with pytest.raises(ConnectorError) as caught:
        connector.health()
    assert caught.value.error_class == ErrorClass.UNAVAILABLE


def test_an_invoice_payment_and_credit_memo_land_linked(netsuite, customer_id):
    so = netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2011")
    invoice = {
        "invoice_number": "INV-3001",
        "currency": "USD",
        "total": "1125.00",
        "finalized_at": "2026-06-01T08:00:00Z",
        "due_date": "2026-07-01",
        "erp_subsidiary_id": "1",
        "sales_order_id": so.external_id,
        "order_number": "ORD-2001",
        "lines": [{"sku": "PLAT-SEAT", "description": "Seats, June", "quantity": "25", "unit_amount": "45.00", "amount": "1125.00"}],
    }
    inv = netsuite.upsert_invoice(invoice=invoice, customer_id=customer_id, external_id="HUB-INV-3001")
    netsuite.upsert_payment(
        payment={"payment_id": "pi_3001", "invoice_number": "INV-3001", "amount": "1125.00", "currency": "USD", "received_at": "2026-06-10T10:00:00Z"},
        customer_id=customer_id,
        invoice_id=inv.external_id,
        external_id="HUB-PAY-3001",
    )
    got = netsuite.get_invoice(external_id="HUB-INV-3001")
    assert (got["invoice_number"], got["total"], got["status"], got["amount_remaining"], got["due_date"]) == (
        "INV-3001",
        "1125.00",
        "paid",
        "0.00",
        "2026-07-01",
    )
    assert Record.objects.get(id=int(inv.external_id)).data["createdFrom"] == {"id": so.external_id}
    netsuite.upsert_credit_memo(
        credit_memo={
            "credit_memo_number": "CN-3001",
            "amount": "45.00",
            "currency": "USD",
            "issued_at": "2026-06-12T00:00:00Z",
            "erp_invoice_id": inv.external_id,
            "reason": "One seat",
        },
        customer_id=customer_id,
        external_id="HUB-CM-3001",
    )
    memo = netsuite.get_credit_memo(external_id="HUB-CM-3001")
    assert (memo["amount"], memo["erp_invoice_id"], memo["credit_memo_number"]) == ("45.00", inv.external_id, "CN-3001")


def test_billing_tax_is_posted_as_a_line_so_the_erp_total_is_the_billing_total(netsuite, customer_id):
    invoice = {
        "invoice_number": "INV-3010",
        "currency": "USD",
        "subtotal": "1125.00",
        "tax": "92.81",
        "total": "1217.81",
        "finalized_at": "2026-06-01T08:00:00Z",
        "erp_subsidiary_id": "1",
        "lines": [{"sku": "PLAT-SEAT", "description": "Seats, June", "quantity": "25", "unit_amount": "45.00", "amount": "1125.00"}],
    }
    netsuite.upsert_invoice(invoice=invoice, customer_id=customer_id, external_id="HUB-INV-3010")
    got = netsuite.get_invoice(external_id="HUB-INV-3010")
    assert got["total"] == "1217.81"
    assert [(line["sku"], line["amount"]) for line in got["lines"]] == [("PLAT-SEAT", "1125.00"), ("SALES-TAX", "92.81")]
    # posting it again (a redelivery) replaces the lines: still one tax line
    netsuite.upsert_invoice(invoice=invoice, customer_id=customer_id, external_id="HUB-INV-3010")
    assert netsuite.get_invoice(external_id="HUB-INV-3010")["total"] == "1217.81"


def test_tax_with_no_tax_item_in_the_erp_is_a_mapping_error_naming_the_setting(netsuite, customer_id):
    netsuite.tax_item = "NO-SUCH-TAX-ITEM"
    invoice = {
        "invoice_number": "INV-3011",
        "currency": "USD",
        "tax": "8.00",
        "total": "108.00",
        "finalized_at": "2026-06-01T08:00:00Z",
        "erp_subsidiary_id": "1",
        "lines": [{"sku": "PLAT-SEAT", "quantity": "1", "unit_amount": "100.00", "amount": "100.00"}],
    }
    with pytest.raises(ConnectorError) as caught:
        netsuite.upsert_invoice(invoice=invoice, customer_id=customer_id, external_id="HUB-INV-3011")
    assert (caught.value.error_class, caught.value.field) == (ErrorClass.MAPPING, "tax") and "NO-SUCH-TAX-ITEM" in caught.value.message


def test_an_invoice_line_without_a_sku_is_a_mapping_error(netsuite, customer_id):
    invoice = {
        "invoice_number": "INV-3002",
        "currency": "USD",
        "total": "5.00",
        "finalized_at": "2026-06-01T08:00:00Z",
        "lines": [{"description": "Proration", "amount": "5.00"}],
    }
    with pytest.raises(ConnectorError) as caught:
        netsuite.upsert_invoice(invoice=invoice, customer_id=customer_id, external_id="HUB-INV-3002")
    assert (caught.value.error_class, caught.value.field) == (ErrorClass.MAPPING, "lines[0].sku")


def test_a_renewal_repeats_the_original_lines_on_a_new_order(netsuite, customer_id):
    so = netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2012")
    renewal = {"renewal_id": "REN-1", "order_number": "ORD-2001", "due_at": "2027-05-05T00:00:00Z", "term_months": 12}
    result = netsuite.record_order_change(change=renewal, sales_order_id=so.external_id, customer_id=customer_id, external_id="HUB-REN-1")
    renewed = netsuite.get_sales_order(external_id="HUB-REN-1")
    assert renewed["id"] == result.external_id != so.external_id
    assert (renewed["effective_date"], renewed["total"]) == ("2027-05-05", "3625.00")


def test_an_item_added_after_caching_is_still_resolved(netsuite, customer_id, raw):
    netsuite.upsert_sales_order(order=an_order(), customer_id=customer_id, external_id="HUB-SO-2013")
    raw.put(f"{raw.base}/record/v1/nonInventorySaleItem/eid:ITEM-ADDON-SSO", json={"itemId": "ADDON-SSO", "displayName": "SSO add-on"})
    netsuite.upsert_sales_order(
        order=an_order(lines=[{"sku": "ADDON-SSO", "quantity": "1", "unit_price": "300.00"}]), customer_id=customer_id, external_id="HUB-SO-2014"
    )
    assert netsuite.get_sales_order(external_id="HUB-SO-2014")["lines"][0]["sku"] == "ADDON-SSO"
