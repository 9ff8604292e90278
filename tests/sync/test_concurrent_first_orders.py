"""Issue 17 item 1: several first orders of one new account at the same time create one billing
customer and one ERP customer — the duplicate seen in fault-free runs of the harness.

The Stripe sandbox is set to search's documented eventual consistency (`search_lag_seconds`): a
customer created a moment ago is not found by /v1/customers/search yet, which is the window in
which two flows that both look before they create used to create two. The account has no e-mail,
so the strongly consistent list-by-email fallback cannot rescue the lookup."""

from __future__ import annotations

import uuid

import pytest

from sync.engine.inbox import accept_canonical
from sync.models import Customer, ExternalRef, FlowRun

from .conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ORDERS = 6


def first_order(number: str, account_id: str) -> dict:
    return {
        "id": f"evt-{uuid.uuid4().hex[:12]}",
        "type": "order.closed_won.v1",
        "source": "crm-relay",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {
            "order_number": number,
            "account": {"external_id": account_id, "name": f"Brand New Account {account_id}"},
            "currency": "USD",
            "legal_entity": "US01",
            "closed_won_at": "2026-11-23T10:00:00Z",
            "effective_date": "2026-11-23",
            "lines": [{"sku": "PLAT-SEAT", "description": "Seats", "quantity": "5", "unit_price": "45.00", "billing": "recurring", "interval": "month"}],
        },
    }


def test_concurrent_first_orders_of_a_new_account_create_one_billing_and_one_erp_customer(stack, reference_data):
    from sandboxes.netsuite.models import ExternalIdLedger, Record
    from sandboxes.stripe.simulate import count_objects

    stack.sandboxes["stripe"].faults(search_lag_seconds=60)
    stack.start_worker(concurrency=4)
    account = f"001NEW{uuid.uuid4().hex[:8].upper()}"
    numbers = [f"ORD-RACE-{i}-{account[-4:]}" for i in range(ORDERS)]
    accept_canonical([first_order(n, account) for n in numbers])

    def settled():
        runs = list(FlowRun.objects.filter(document_number__in=numbers, flow_type="order_activation"))
        return len(runs) == ORDERS and all(r.status in ("completed", "failed") for r in runs) and runs

    runs = wait_for(settled, timeout=180, message="the first orders did not settle")
    assert {r.status for r in runs} == {"completed"}, [
        (r.document_number, r.status, list(r.steps.exclude(status="succeeded").values_list("name", "error_message"))) for r in runs
    ]

    customer_ids = set(ExternalRef.objects.filter(canonical_type="customer", object_type="Account", external_id=account).values_list("canonical_id", flat=True))
    assert len(customer_ids) == 1
    customer = Customer.objects.get(pk=customer_ids.pop())
    assert count_objects("customer", hub_id=str(customer.pk)) == 1, "Stripe customers created for one hub customer"
    erp_customers = Record.objects.filter(record_type="customer", data__companyName=f"Brand New Account {account}").count()
    ledger = ExternalIdLedger.objects.filter(record_type="customer", external_id__contains=account).values_list("creates", flat=True)
    assert erp_customers == 1 and list(ledger) == [1]
    # every order bills the one customer
    billing_ids = {r.context["steps"]["billing_customer"]["billing_customer_id"] for r in runs}
    assert len(billing_ids) == 1
