"""StripeConnector against the sandbox server: idempotent writes and classified errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from sandboxes.stripe import simulate
from sync.connectors.errors import ConnectorError
from sync.connectors.stripe.client import StripeConnector
from sync.models import ConnectorCall

pytestmark = pytest.mark.django_db(transaction=True)


def test_upsert_customer_finds_by_hub_id_and_never_duplicates(connector):
    first = connector.upsert_customer(customer={"hub_id": "hub-1", "name": "Acme", "email": "ap@acme.example"}, idempotency_key="c-1")
    again = connector.upsert_customer(customer={"hub_id": "hub-1", "name": "Acme", "email": "ap@acme.example"}, idempotency_key="c-2")
    renamed = connector.upsert_customer(customer={"hub_id": "hub-1", "name": "Acme GmbH", "email": "ap@acme.example"}, idempotency_key="c-3")

    assert first.created is True and again.created is False and renamed.created is False
    assert first.external_id == again.external_id == renamed.external_id
    assert simulate.count_objects("customer") == 1
    assert renamed.raw["name"] == "Acme GmbH"


def test_create_subscription_twice_leaves_exactly_one_subscription(connector, customer_id, order):
    first = connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="flow-7:billing")
    again = connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="flow-7:billing")

    assert first.external_id == again.external_id
    assert simulate.count_objects("subscription", order_number="SO-1001") == 1
    sub = connector.get_subscription(subscription_id=first.external_id)
    assert sub["currency"] == "USD" and sub["order_number"] == "SO-1001"
    assert {(i["sku"], i["quantity"], i["unit_price"]) for i in sub["items"]} == {("PLAT-PRO", "10", "49.00"), ("SUPPORT-GOLD", "1", "1200.00")}
    assert sub["arr"] == "7080.00"  # 10 × 49 × 12 + 1200


def test_products_are_created_once_with_the_sku_as_id(connector, customer_id, order, official):
    connector.create_subscription(customer_id=customer_id, order=order("SO-1"), idempotency_key="a")
    connector.create_subscription(customer_id=customer_id, order=order("SO-2"), idempotency_key="b")
    assert official.v1.products.retrieve("PLAT-PRO").name == "Platform Pro seat"
    assert simulate.count_objects("product") == 2


def test_zero_decimal_currency_is_sent_in_whole_yen(connector, order):
    cid = connector.upsert_customer(customer={"hub_id": "hub-jp", "name": "Tokyo KK"}, idempotency_key="jp").external_id
    result = connector.create_subscription(
        customer_id=cid,
        order=order("SO-JP", "JPY", lines=[{"sku": "PLAT-PRO", "quantity": "2", "unit_price": "5000", "billing": "recurring", "interval": "month"}]),
        idempotency_key="jp-sub",
    )
    assert result.raw["items"]["data"][0]["price"]["unit_amount"] == 5000
    invoice = next(connector.list_invoices(customer_id=cid))
    assert invoice["currency"] == "JPY" and invoice["total"] == "10000" and invoice["order_number"] == "SO-JP"


def test_update_subscription_makes_items_match_by_sku(connector, customer_id, order):
    sub_id = connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="s").external_id
    connector.update_subscription(
        subscription_id=sub_id,
        idempotency_key="amend-1",
        items=[
            {"sku": "PLAT-PRO", "quantity": "12", "unit_price": "49.00"},
            {"sku": "SUPPORT-GOLD", "quantity": "0", "unit_price": "1200.00"},
            {"sku": "ADDON-SSO", "quantity": "1", "unit_price": "99.50", "billing": "recurring", "interval": "month"},
        ],
    )
    sub = connector.get_subscription(subscription_id=sub_id)
    assert sorted((i["sku"], i["quantity"], i["unit_price"]) for i in sub["items"]) == [("ADDON-SSO", "1", "99.50"), ("PLAT-PRO", "12", "49.00")]
    unchanged = connector.update_subscription(
        subscription_id=sub_id, idempotency_key="amend-2", items=[{"sku": "PLAT-PRO", "quantity": "12", "unit_price": "49.00"}]
    )
    assert unchanged.created is False and unchanged.status_code == 200


def test_cancel_subscription_is_idempotent(connector, customer_id, order):
    sub_id = connector.create_subscription(customer_id=customer_id, order=order(), idempotency_key="s").external_id
    assert connector.cancel_subscription(subscription_id=sub_id, idempotency_key="cancel").raw["status"] == "canceled"
    assert connector.cancel_subscription(subscription_id=sub_id, idempotency_key="cancel").raw["status"] == "canceled"


def test_report_usage_twice_counts_once(connector, customer_id):
    when = datetime.now(UTC)
    first = connector.report_usage(customer_id=customer_id, metric="api_calls", quantity="250", timestamp=when, idempotency_key="usage-2025-04")
    again = connector.report_usage(customer_id=customer_id, metric="api_calls", quantity="250", timestamp=when, idempotency_key="usage-2025-04")
    assert first.external_id == again.external_id
    assert simulate.count_objects("billing.meter_event") == 1


def test_a_429_with_retry_after_2_is_waited_out_and_succeeds(connector, stripe_sandbox):
    stripe_sandbox.faults(rate_limit_retry_after=2, rate_limit_requests=1)
    started = time.monotonic()
    result = connector.upsert_customer(customer={"hub_id": "hub-rl", "name": "Rate Ltd"}, idempotency_key="rl")
    assert result.created is True
    assert time.monotonic() - started >= 2.0
    assert ConnectorCall.objects.filter(system="stripe", status_code=429, error_class="rate_limit").count() == 1


def test_a_long_retry_after_is_left_to_the_engine(connector, stripe_sandbox):
    stripe_sandbox.faults(rate_limit_retry_after=120, rate_limit_requests=-1)
    with pytest.raises(ConnectorError) as caught:
        connector.upsert_customer(customer={"hub_id": "hub-rl", "name": "Rate Ltd"}, idempotency_key="rl")
    assert caught.value.error_class == "rate_limit" and caught.value.transient and caught.value.retry_after == 120


def test_a_400_is_a_validation_error_with_stripes_message_and_param(connector, stripe_sandbox):
    stripe_sandbox.faults(fail_records=["blocked@acme.example"])
    with pytest.raises(ConnectorError) as caught:
        connector.upsert_customer(customer={"hub_id": "hub-x", "name": "Acme", "email": "blocked@acme.example"}, idempotency_key="x")
    error = caught.value
    assert error.error_class == "validation" and not error.transient
    assert error.field == "email" and error.status_code == 400
    assert "blocked@acme.example" in error.message


def test_an_unknown_subscription_is_not_found(connector):
    with pytest.raises(ConnectorError) as caught:
        connector.get_subscription(subscription_id="sub_missing")
    assert caught.value.error_class == "not_found" and "No such subscription" in caught.value.message


def test_an_outage_is_unavailable_and_transient(connector, stripe_sandbox):
    stripe_sandbox.faults(outage=True)
    with pytest.raises(ConnectorError) as caught:
        connector.upsert_customer(customer={"hub_id": "hub-o", "name": "Acme"}, idempotency_key="o")
    assert caught.value.error_class == "unavailable" and caught.value.transient and caught.value.status_code == 503


def test_a_refused_connection_is_unavailable(settings):
    connector = StripeConnector(api_base="http://127.0.0.1:9", api_key="sk_test_sandbox", webhook_secret="whsec_x", api_version="2025-03-31.basil")
    with pytest.raises(ConnectorError) as caught:
        connector.health()
    assert caught.value.error_class == "unavailable"


def test_a_slow_answer_is_a_timeout(stripe_sandbox, settings):
    stripe_sandbox.faults(latency_ms=1500)
    config = settings.CONNECTORS["stripe"]
    connector = StripeConnector(
        api_base=config["api_base"], api_key=config["api_key"], webhook_secret="whsec_x", api_version=config["api_version"], timeout=0.5
    )
    with pytest.raises(ConnectorError) as caught:
        connector.health()
    assert caught.value.error_class == "timeout" and caught.value.transient


def test_a_wrong_api_key_is_an_auth_error(stripe_sandbox, settings):
    config = settings.CONNECTORS["stripe"]
    connector = StripeConnector(api_base=config["api_base"], api_key="sk_test_revoked", webhook_secret="whsec_x", api_version=config["api_version"])
    with pytest.raises(ConnectorError) as caught:
        connector.health()
    assert caught.value.error_class == "auth" and caught.value.status_code == 401
    assert caught.value.message.startswith("Invalid API Key provided")


def test_every_request_is_recorded_under_its_operation(connector):
    connector.upsert_customer(customer={"hub_id": "hub-rec", "name": "Record Ltd", "email": "ap@record.example"}, idempotency_key="rec")
    calls = list(ConnectorCall.objects.filter(system="stripe").order_by("id").values_list("operation", "status_code", "error_class"))
    assert calls == [("customers.search", 200, ""), ("customers.list", 200, ""), ("customers.create", 200, "")]


def test_one_time_lines_are_invoice_items_of_the_first_invoice_not_subscription_prices(connector, customer_id, order):
    """Issue 11: ONBOARD-FEE was billed as "2500.00 USD / month". One-time lines go with the
    subscription as one-time items of its first invoice (Stripe's add_invoice_items); only
    recurring prices are subscription items, and only they are ARR."""
    from sandboxes.stripe.models import StripeObject
    from sync.connectors.stripe import mapper

    lines = [
        {"sku": "PLAT-SEAT", "quantity": "10", "unit_price": "45.00", "billing": "recurring", "interval": "month"},
        {"sku": "PLAT-ENT", "quantity": "1", "unit_price": "24000.00", "billing": "recurring", "interval": "year"},
        {"sku": "ONBOARD-FEE", "quantity": "1", "unit_price": "2500.00", "billing": "one_time"},
    ]
    created = connector.create_subscription(customer_id=customer_id, order=order("SO-ONE", lines=lines), idempotency_key="one-time")
    sub = connector.get_subscription(subscription_id=created.external_id)

    assert sorted((i["sku"], i["billing"], i["interval"]) for i in sub["items"]) == [("PLAT-ENT", "recurring", "year"), ("PLAT-SEAT", "recurring", "month")]
    assert sub["arr"] == "29400.00"  # 10 × 45 × 12 + 24000; the fee is no ARR
    invoice = StripeObject.objects.get(object="invoice", subscription=created.external_id).data
    charges = {line["sku"]: (line["charge_type"], line["amount"]) for line in mapper.invoice_lines(invoice)}
    assert charges == {"PLAT-SEAT": ("recurring", "450.00"), "PLAT-ENT": ("recurring", "24000.00"), "ONBOARD-FEE": ("one_time", "2500.00")}
    fee = next(line for line in invoice["lines"]["data"] if line["pricing"]["price_details"]["product"] == "ONBOARD-FEE")
    assert "/ month" not in fee["description"] and fee["parent"]["type"] == "invoice_item_details"
    assert created.starts_at is not None


def test_a_line_that_does_not_say_how_it_bills_is_refused_naming_the_product(connector, customer_id, order):
    with pytest.raises(ConnectorError) as refused:
        connector.create_subscription(
            customer_id=customer_id, order=order("SO-GUESS", lines=[{"sku": "LEGACY-42", "quantity": "1", "unit_price": "120.00"}]), idempotency_key="guess"
        )
    assert refused.value.error_class == "mapping" and "LEGACY-42" in refused.value.message and refused.value.field == "lines[0].billing"
