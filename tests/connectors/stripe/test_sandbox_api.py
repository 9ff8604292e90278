"""The sandbox speaks Stripe: the official stripe-python library works against it unmodified."""

from __future__ import annotations

import pytest
import requests
import stripe

from sandboxes.stripe import simulate

pytestmark = pytest.mark.django_db(transaction=True)


def _customer(official, **params):
    return official.v1.customers.create(params={"name": "Acme GmbH", "email": "billing@acme.example", **params})


def _product(official, sku="PLAT-PRO"):
    return official.v1.products.create(params={"id": sku, "name": sku})


def _subscription_params(customer_id, order_number="SO-1"):
    return {
        "customer": customer_id,
        "items": [{"price_data": {"currency": "usd", "product": "PLAT-PRO", "unit_amount": 4900, "recurring": {"interval": "month"}}, "quantity": 3}],
        "metadata": {"order_number": order_number},
    }


def test_official_library_creates_a_customer_a_subscription_and_lists_its_invoice(official):
    customer = _customer(official, metadata={"hub_id": "h-1"})
    _product(official)
    sub = official.v1.subscriptions.create(params=_subscription_params(customer.id))

    assert customer.id.startswith("cus_") and customer.metadata["hub_id"] == "h-1"
    assert sub.status == "active" and sub.currency == "usd"
    item = sub["items"].data[0]
    assert item.quantity == 3 and item.price.unit_amount == 4900 and item.price.product == "PLAT-PRO"
    assert item.current_period_end > item.current_period_start  # basil: periods live on items
    invoices = official.v1.invoices.list(params={"customer": customer.id})
    assert len(invoices.data) == 1
    invoice = invoices.data[0]
    assert invoice.status == "open" and invoice.total == 14700 and invoice.number
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.parent.subscription_details.metadata["order_number"] == "SO-1"
    assert official.v1.invoices.retrieve(invoice.id).id == invoice.id
    assert official.v1.customers.search(params={"query": "metadata['hub_id']:'h-1'"}).data[0].id == customer.id


def test_the_same_idempotency_key_twice_creates_exactly_one_subscription(official):
    customer = _customer(official)
    _product(official)
    params = _subscription_params(customer.id)
    first = official.v1.subscriptions.create(params=params, options={"idempotency_key": "order-SO-1"})
    second = official.v1.subscriptions.create(params=params, options={"idempotency_key": "order-SO-1"})

    assert first.id == second.id
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert simulate.count_objects("subscription", idempotency_key="order-SO-1") == 1
    assert simulate.count_objects("subscription") == 1


def test_reusing_a_key_with_other_parameters_is_an_idempotency_error(official):
    customer = _customer(official)
    _product(official)
    official.v1.subscriptions.create(params=_subscription_params(customer.id), options={"idempotency_key": "k-1"})
    with pytest.raises(stripe.IdempotencyError) as caught:
        official.v1.subscriptions.create(params=_subscription_params(customer.id, "SO-2"), options={"idempotency_key": "k-1"})
    assert caught.value.http_status == 400
    assert "same parameters" in caught.value.user_message


def test_a_validation_failure_is_not_replayed_for_its_key(official, stripe_sandbox):
    customer = _customer(official)
    _product(official)
    stripe_sandbox.faults(fail_records=["SO-BAD"])
    with pytest.raises(stripe.InvalidRequestError) as caught:
        official.v1.subscriptions.create(params=_subscription_params(customer.id, "SO-BAD"), options={"idempotency_key": "k-bad"})
    assert caught.value.param == "metadata[order_number]"
    stripe_sandbox.faults()
    sub = official.v1.subscriptions.create(params=_subscription_params(customer.id, "SO-BAD"), options={"idempotency_key": "k-bad"})
    assert sub.status == "active"
    assert simulate.count_objects("subscription", order_number="SO-BAD") == 1


def test_a_request_without_a_key_gets_stripes_401(stripe_sandbox):
    response = requests.get(f"{stripe_sandbox.url}/v1/customers", timeout=10)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth "
            "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
            "or we can help at https://support.stripe.com/.",
            "type": "invalid_request_error",
        }
    }
    wrong = requests.get(f"{stripe_sandbox.url}/v1/customers", headers={"Authorization": "Bearer sk_test_wrongkey1234"}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "Invalid API Key provided: sk_test_********1234"


def test_concurrent_creates_of_one_product_id_give_one_product_and_stripes_400_not_a_500(official, stripe_sandbox, settings):
    """Two flows needing the same SKU at once (seen in bench/bench_flows.py): Stripe answers
    the loser resource_already_exists, which the connector treats as done."""
    from concurrent.futures import ThreadPoolExecutor

    def create(sku):
        return requests.post(
            f"{stripe_sandbox.url}/v1/products", data={"id": sku, "name": "Race"}, auth=(settings.CONNECTORS["stripe"]["api_key"], ""), timeout=10
        )

    with ThreadPoolExecutor(8) as pool:
        for round_ in range(6):  # the window is narrow: several rounds make a lost race near-certain to show
            sku = f"SKU-RACE-{round_}"
            codes = sorted(r.status_code for r in pool.map(create, [sku] * 8))
            assert codes.count(200) == 1 and set(codes) == {200, 400}, codes
            assert official.v1.products.retrieve(sku).id == sku


def test_an_existing_product_id_is_resource_already_exists(official):
    _product(official, "SKU-1")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _product(official, "SKU-1")
    assert caught.value.code == "resource_already_exists" and caught.value.param == "id"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        official.v1.products.retrieve("SKU-NOPE")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"


def test_unknown_parameters_are_rejected_naming_the_param(official):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        official.v1.customers.create(params={"name": "A", "colour": "blue"})
    assert caught.value.param == "colour" and "unknown parameter" in caught.value.user_message


def test_invoices_page_with_starting_after_and_has_more(official):
    customer = _customer(official)
    _product(official)
    for n in range(3):
        official.v1.subscriptions.create(params=_subscription_params(customer.id, f"SO-{n}"))
    first = official.v1.invoices.list(params={"customer": customer.id, "limit": 2})
    assert len(first.data) == 2 and first.has_more
    rest = official.v1.invoices.list(params={"customer": customer.id, "limit": 2, "starting_after": first.data[-1].id})
    assert len(rest.data) == 1 and not rest.has_more
    all_ids = [i.id for i in official.v1.invoices.list(params={"customer": customer.id}).auto_paging_iter()]
    assert all_ids == [i.id for i in first.data] + [i.id for i in rest.data]


def test_subscription_update_and_cancel_record_events_with_the_idempotency_key(official):
    customer = _customer(official)
    _product(official)
    sub = official.v1.subscriptions.create(params=_subscription_params(customer.id), options={"idempotency_key": "create-1"})
    item = sub["items"].data[0]
    official.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item.id, "quantity": 5}], "proration_behavior": "create_prorations"}, options={"idempotency_key": "update-1"}
    )
    official.v1.subscriptions.cancel(sub.id)
    events = {e.type: e for e in official.v1.events.list(params={"limit": 100}).data}

    assert events["customer.subscription.created"].request.idempotency_key == "create-1"
    updated = events["customer.subscription.updated"]
    assert updated.request.idempotency_key == "update-1"
    assert updated.data.previous_attributes["items"]["data"][0]["quantity"] == 3
    assert updated.data.object["items"]["data"][0]["quantity"] == 5
    assert events["customer.subscription.deleted"].data.object.status == "canceled"
    assert {"invoice.created", "invoice.finalized"} <= set(events)


def test_credit_notes_and_meter_events(official):
    customer = _customer(official)
    _product(official)
    official.v1.subscriptions.create(params=_subscription_params(customer.id))
    invoice = official.v1.invoices.list(params={"customer": customer.id}).data[0]
    note = official.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 4900, "reason": "product_unsatisfactory"})
    assert note.total == 4900 and note.number.startswith(invoice.number)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        official.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 14700})
    assert too_much.value.param == "amount"

    params = {"event_name": "api_calls", "identifier": "usage-1", "payload": {"stripe_customer_id": customer.id, "value": "25"}}
    official.v1.billing.meter_events.create(params=params)
    official.v1.billing.meter_events.create(params=params)
    assert simulate.count_objects("billing.meter_event") == 1
