"""BusinessCentralConnector against the sandbox server: what BC makes the connector do beyond the
ERP contract — ETag conflicts re-read and retried, query-before-create, draft → post, journal
posting that applies payments, nextLink paging, 429s, the bearer token's cache."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

from sandboxes.business_central.models import Entity, TokenGrant
from sync.connectors.business_central import mapper
from sync.connectors.business_central.client import BusinessCentralConnector
from sync.connectors.errors import ConnectorError
from sync.models import ConnectorCall, ErrorClass

pytestmark = pytest.mark.django_db(transaction=True)
COMPANY = "5b2a1c9e-7d3f-4e8a-9c61-0b4d2f7a8e13"


def key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def a_customer(bc, name: str = "Initech GmbH") -> str:
    return bc.upsert_customer(
        customer={"account": {"external_id": key("ACC"), "name": name, "email": "ap@initech.example"}, "currency": "USD", "erp_subsidiary_id": COMPANY},
        external_id=key("CUS"),
    ).external_id


def an_invoice(number: str, *, amount: str = "450.00", quantity: str = "10", unit: str = "45.00") -> dict:
    return {
        "invoice_number": number,
        "currency": "USD",
        "total": amount,
        "finalized_at": "2026-03-03T00:00:00Z",
        "due_date": "2026-04-02",
        "billing_invoice_id": f"in_{number}",
        "lines": [{"sku": "PLAT-SEAT", "description": "Seats", "quantity": quantity, "unit_amount": unit, "amount": amount}],
    }


def a_payment(invoice_number: str, amount: str) -> dict:
    return {"payment_id": key("pi"), "invoice_number": invoice_number, "amount": amount, "currency": "USD", "received_at": "2026-03-05T12:00:00Z"}


def entity(entity_set: str, guid: str) -> Entity:
    return Entity.objects.get(entity_set=entity_set, guid=guid)


def calls(operation: str, status: int | None = None):
    qs = ConnectorCall.objects.filter(system="business_central", operation=operation)
    return qs if status is None else qs.filter(status_code=status)


# --- ETags ------------------------------------------------------------------------------------
def test_a_stale_etag_is_re_read_and_the_patch_tried_again(bc, raw):
    customer_id = a_customer(bc)
    stale = raw("GET", f"customers({customer_id})").json()["@odata.etag"]
    assert raw("PATCH", f"customers({customer_id})", json={"phoneNumber": "+49 30 1234"}, headers={"If-Match": stale}).status_code == 200  # another user

    record = bc.patch(bc.company_path(f"customers({customer_id})"), {"displayName": "Initech AG"}, etag=stale, operation="update customers")

    assert record["displayName"] == "Initech AG"
    assert entity("customers", customer_id).data["phoneNumber"] == "+49 30 1234"  # the other user's change is kept
    assert calls("update customers", 409).count() == 1 and calls("update customers", 200).count() == 1
    assert calls("re-read customers").count() == 1


def test_an_upsert_racing_another_writer_still_lands(bc, raw, monkeypatch):
    """The record changes between the connector's find and its PATCH: 409, re-read, PATCH again."""
    external_id = key("CUS")
    bc.upsert_customer(customer={"name": "Initech GmbH", "currency": "USD"}, external_id=external_id)
    found = bc.find

    def find_then_someone_edits(entity_set, filter_, **kwargs):
        record = found(entity_set, filter_, **kwargs)
        if record and entity_set == "customers":
            raw("PATCH", f"customers({record['id']})", json={"city": "Berlin"}, headers={"If-Match": "*"})
        return record

    monkeypatch.setattr(bc, "find", find_then_someone_edits)
    result = bc.upsert_customer(customer={"name": "Initech AG", "currency": "USD"}, external_id=external_id)

    data = entity("customers", result.external_id).data
    assert (data["displayName"], data["city"]) == ("Initech AG", "Berlin")
    assert calls("update customers", 409).count() == 1


def test_etag_retries_are_bounded_then_a_conflict(bc, raw, monkeypatch):
    customer_id = a_customer(bc)
    stale = raw("GET", f"customers({customer_id})").json()["@odata.etag"]
    raw("PATCH", f"customers({customer_id})", json={"city": "Bonn"}, headers={"If-Match": stale})
    monkeypatch.setattr(bc, "get", lambda path, **kw: {"@odata.etag": stale})  # every re-read sees the old version

    with pytest.raises(ConnectorError) as caught:
        bc.patch(bc.company_path(f"customers({customer_id})"), {"displayName": "Never"}, etag=stale, operation="update customers")

    assert caught.value.error_class == ErrorClass.CONFLICT and caught.value.code == "Request_EntityChanged"
    assert calls("update customers", 409).count() == bc.ETAG_ATTEMPTS
    assert entity("customers", customer_id).data["displayName"] == "Initech GmbH"


def test_the_sandbox_refuses_a_patch_without_if_match_and_a_stale_one(bc, raw):
    customer_id = a_customer(bc)
    first = raw("GET", f"customers({customer_id})").json()["@odata.etag"]

    missing = raw("PATCH", f"customers({customer_id})", json={"city": "Köln"})
    fresh = raw("PATCH", f"customers({customer_id})", json={"city": "Köln"}, headers={"If-Match": first})
    stale = raw("PATCH", f"customers({customer_id})", json={"city": "Bonn"}, headers={"If-Match": first})

    assert missing.status_code == 400 and missing.json()["error"]["code"] == "BadRequest_InvalidToken"
    assert fresh.status_code == 200 and fresh.json()["@odata.etag"] != first and fresh.headers["ETag"] == fresh.json()["@odata.etag"]
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "Request_EntityChanged"
    assert "CorrelationId" in stale.json()["error"]["message"]


# --- query before create --------------------------------------------------------------------------
def test_two_creates_with_one_external_document_number_are_one_order(bc):
    customer_id, external_id = a_customer(bc), key("SO")
    order = {
        "order_number": key("ORD"),
        "currency": "USD",
        "effective_date": "2026-03-02",
        "lines": [{"sku": "PLAT-SEAT", "quantity": "5", "unit_price": "45.00"}],
    }
    first = bc.upsert_sales_order(order=order, customer_id=customer_id, external_id=external_id)
    second = bc.upsert_sales_order(order=order, customer_id=customer_id, external_id=external_id)

    orders = Entity.objects.filter(entity_set="salesOrders", data__externalDocumentNumber=mapper.external_document_number(external_id))
    assert orders.count() == 1 and first.external_id == second.external_id == str(orders.get().guid)
    assert (first.created, second.created) == (True, False)
    assert calls("create salesOrders").count() == 1
    assert calls("update salesOrders").count() == 0 and calls("create salesOrderLines").count() == 0  # nothing to change: nothing written


def test_a_create_whose_answer_was_garbled_is_found_not_repeated(bc, bc_server):
    customer_id, external_id = a_customer(bc), key("INV")
    bc_server.faults(garble_responses=1)  # the create succeeds, its answer is garbage

    result = bc.upsert_invoice(invoice=an_invoice(key("INV")), customer_id=customer_id, external_id=external_id)

    invoices = Entity.objects.filter(entity_set="salesInvoices", data__externalDocumentNumber=mapper.external_document_number(external_id))
    assert invoices.count() == 1 and str(invoices.get().guid) == result.external_id
    assert invoices.get().data["status"] == "Open"


def test_customers_are_keyed_by_a_number_that_fits_code_20(bc):
    long_key = "CUST-001Dn00000ABCDEFGHIJ"  # a Salesforce account id: mixed case, longer than 20
    first = bc.upsert_customer(customer={"name": "Acme", "currency": "USD"}, external_id=long_key)
    again = bc.upsert_customer(customer={"name": "Acme Corp", "currency": "USD"}, external_id=long_key)
    other = bc.upsert_customer(customer={"name": "Acme (other)", "currency": "USD"}, external_id=long_key.upper())

    number = mapper.customer_number(long_key)
    assert len(number) == 20 and number == number.upper()
    assert first.external_id == again.external_id != other.external_id  # case matters in the hub's key
    assert entity("customers", first.external_id).data["number"] == number
    assert bc.get_customer(external_id=long_key)["name"] == "Acme Corp"


# --- draft → post ------------------------------------------------------------------------------------
def test_an_invoice_is_created_as_a_draft_then_posted(bc, raw):
    customer_id, external_id = a_customer(bc), key("INV")

    result = bc.upsert_invoice(invoice=an_invoice(key("INV")), customer_id=customer_id, external_id=external_id)

    data = entity("salesInvoices", result.external_id).data
    assert data["status"] == "Open" and data["number"].startswith("PS-INV")
    assert Decimal(data["totalAmountIncludingTax"]) == Decimal(data["remainingAmount"]) == Decimal("450.00")
    assert calls("create salesInvoices").count() == 1 and calls("post salesInvoices", 204).count() == 1
    ledger = Entity.objects.filter(entity_set="generalLedgerEntries", data__documentNumber=data["number"])
    assert sorted((Decimal(e.data["debitAmount"]), Decimal(e.data["creditAmount"])) for e in ledger) == [(0, Decimal("450.00")), (Decimal("450.00"), 0)]
    refused = raw("PATCH", f"salesInvoices({result.external_id})", json={"dueDate": "2026-05-01"}, headers={"If-Match": "*"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "Application_DialogException"
    view = bc.get_invoice(external_id=external_id)
    assert (view["status"], view["posted"], view["amount_remaining"], view["lines"][0]["sku"]) == ("open", True, "450.00", "PLAT-SEAT")


def test_a_posted_invoice_is_returned_as_it_is_on_a_retry(bc):
    customer_id, external_id = a_customer(bc), key("INV")
    first = bc.upsert_invoice(invoice=an_invoice(key("INV")), customer_id=customer_id, external_id=external_id)
    posted = entity("salesInvoices", first.external_id)

    again = bc.upsert_invoice(invoice=an_invoice(key("INV"), amount="900.00", quantity="20"), customer_id=customer_id, external_id=external_id)

    assert again.external_id == first.external_id and again.created is False and again.raw["posted"] is True
    assert entity("salesInvoices", first.external_id).version == posted.version  # not touched
    assert calls("post salesInvoices").count() == 1


def test_a_draft_left_by_a_crash_is_completed_and_posted(bc, raw):
    """The first try created the draft and died before posting: the retry finds it, fixes its lines, posts it."""
    customer_id, external_id = a_customer(bc), key("INV")
    draft = raw(
        "POST",
        "salesInvoices",
        json={
            "externalDocumentNumber": mapper.external_document_number(external_id),
            "customerId": customer_id,
            "salesInvoiceLines": [{"lineType": "Item", "lineObjectNumber": "PLAT-SEAT", "quantity": 1, "unitPrice": 45}],
        },
    )
    assert draft.status_code == 201 and draft.json()["status"] == "Draft"

    result = bc.upsert_invoice(invoice=an_invoice(key("INV")), customer_id=customer_id, external_id=external_id)

    assert result.external_id == draft.json()["id"] and result.created is False
    data = entity("salesInvoices", result.external_id).data
    assert data["status"] == "Open" and Decimal(data["totalAmountIncludingTax"]) == Decimal("450.00")
    assert Entity.objects.filter(entity_set="salesInvoices", data__externalDocumentNumber=mapper.external_document_number(external_id)).count() == 1


def test_a_prorated_line_keeps_billings_amount_through_a_line_discount(bc):
    customer_id = a_customer(bc)
    invoice = an_invoice(key("INV"), amount="412.50", quantity="10", unit="45.00")  # 10 × 45 = 450, prorated to 412.50

    result = bc.upsert_invoice(invoice=invoice, customer_id=customer_id, external_id=key("INV"))

    line = Entity.objects.get(entity_set="salesInvoiceLines", parent__guid=result.external_id)
    assert Decimal(line.data["discountAmount"]) == Decimal("37.50") and Decimal(line.data["amountExcludingTax"]) == Decimal("412.50")
    assert Decimal(entity("salesInvoices", result.external_id).data["totalAmountIncludingTax"]) == Decimal("412.50")


def test_a_credit_memo_posts_and_applies_to_its_invoice(bc):
    customer_id = a_customer(bc)
    invoice = bc.upsert_invoice(invoice=an_invoice(key("INV")), customer_id=customer_id, external_id=key("INV"))
    memo = {"credit_memo_number": key("CM"), "amount": "45.00", "currency": "USD", "issued_at": "2026-03-06T00:00:00Z", "erp_invoice_id": invoice.external_id}

    result = bc.upsert_credit_memo(credit_memo=memo, customer_id=customer_id, external_id=key("CM"))

    data = entity("salesCreditMemos", result.external_id).data
    assert data["status"] == "Paid" and data["number"].startswith("PS-CR") and data["invoiceId"] == invoice.external_id
    assert Decimal(entity("salesInvoices", invoice.external_id).data["remainingAmount"]) == Decimal("405.00")


# --- payments through the journal ---------------------------------------------------------------------
def test_posting_the_journal_applies_payments_to_the_invoice(bc):
    customer_id = a_customer(bc)
    invoice_number = key("INV")
    invoice = bc.upsert_invoice(invoice=an_invoice(invoice_number), customer_id=customer_id, external_id=key("INV"))

    first = bc.upsert_payment(payment=a_payment(invoice_number, "200.00"), customer_id=customer_id, invoice_id=invoice.external_id, external_id=key("PAY"))
    after_first = entity("salesInvoices", invoice.external_id).data
    bc.upsert_payment(payment=a_payment(invoice_number, "250.00"), customer_id=customer_id, invoice_id=invoice.external_id, external_id=key("PAY"))
    after_second = entity("salesInvoices", invoice.external_id).data

    assert (Decimal(after_first["remainingAmount"]), after_first["status"]) == (Decimal("250.00"), "Open")
    assert (Decimal(after_second["remainingAmount"]), after_second["status"]) == (Decimal(0), "Paid")
    journal = Entity.objects.get(entity_set="customerPaymentJournals", data__code="Q2C")  # created by the connector
    assert not Entity.objects.filter(parent=journal).exists()  # posted lines leave the journal
    entries = Entity.objects.filter(entity_set="generalLedgerEntries", data__documentNumber=first.external_id, data__documentType="Payment")
    assert sorted((e.data["accountNumber"], Decimal(e.data["debitAmount"]), Decimal(e.data["creditAmount"])) for e in entries) == [
        ("10100", Decimal("200.00"), 0),
        ("13100", 0, Decimal("200.00")),
    ]


def test_a_payment_retried_after_posting_is_not_posted_twice(bc):
    customer_id = a_customer(bc)
    invoice_number, external_id = key("INV"), key("PAY")
    invoice = bc.upsert_invoice(invoice=an_invoice(invoice_number), customer_id=customer_id, external_id=key("INV"))
    payment = a_payment(invoice_number, "100.00")

    first = bc.upsert_payment(payment=payment, customer_id=customer_id, invoice_id=invoice.external_id, external_id=external_id)
    again = bc.upsert_payment(payment=payment, customer_id=customer_id, invoice_id=invoice.external_id, external_id=external_id)

    assert first.external_id == again.external_id == mapper.document_number(external_id) and again.created is False
    assert Entity.objects.filter(entity_set="generalLedgerEntries", data__documentNumber=first.external_id).count() == 2
    assert Decimal(entity("salesInvoices", invoice.external_id).data["remainingAmount"]) == Decimal("350.00")
    assert bc.get_payment(external_id=external_id) == {
        "id": first.external_id,
        "document_number": first.external_id,
        "posted": True,
        "amount": "100.00",
        "received_on": "2026-03-05",
    }


def test_an_overpayment_pays_the_invoice_and_leaves_the_rest_open(bc):
    customer_id = a_customer(bc)
    invoice_number = key("INV")
    invoice = bc.upsert_invoice(
        invoice=an_invoice(invoice_number, amount="100.00", quantity="1", unit="100.00"), customer_id=customer_id, external_id=key("INV")
    )

    bc.upsert_payment(payment=a_payment(invoice_number, "150.00"), customer_id=customer_id, invoice_id=invoice.external_id, external_id=key("PAY"))

    assert entity("salesInvoices", invoice.external_id).data["status"] == "Paid"
    assert Decimal(entity("customers", customer_id).data["balanceDue"]) == Decimal("-50.00")  # a credit on the customer


def test_an_unpostable_payment_line_is_taken_out_of_the_journal(bc, raw):
    """A payment to a draft invoice is refused, and the hub's batch is not left blocked by it."""
    customer_id = a_customer(bc)
    draft = raw("POST", "salesInvoices", json={"customerId": customer_id, "salesInvoiceLines": [{"lineObjectNumber": "PLAT-SEAT", "quantity": 1}]}).json()

    with pytest.raises(ConnectorError) as caught:
        bc.upsert_payment(payment=a_payment("X", "45.00"), customer_id=customer_id, invoice_id=draft["id"], external_id=key("PAY"))

    assert caught.value.error_class == ErrorClass.VALIDATION and "Open, Paid, Corrective, or Canceled" in caught.value.message
    invoice = bc.upsert_invoice(invoice=an_invoice(key("INV")), customer_id=customer_id, external_id=key("INV"))
    bc.upsert_payment(payment=a_payment("Y", "45.00"), customer_id=customer_id, invoice_id=invoice.external_id, external_id=key("PAY"))
    assert Decimal(entity("salesInvoices", invoice.external_id).data["remainingAmount"]) == Decimal("405.00")


# --- paging ------------------------------------------------------------------------------------------------
def test_query_follows_next_links_across_server_pages(bc, bc_server):
    prefix = f"PG{uuid.uuid4().hex[:6].upper()}"
    for i in range(7):
        bc.upsert_customer(customer={"name": f"Paged {i}", "currency": "USD"}, external_id=f"{prefix}-{i}")
    bc_server.settings(max_page_size=3)  # the server's own cap, below what the connector asks for

    rows = list(bc.query(q="customers?$filter=displayName ge 'Paged'&$orderby=number"))

    assert [r["number"] for r in rows if r["number"].startswith(prefix)] == [f"{prefix}-{i}" for i in range(7)]
    assert calls("query customers").count() == -(-len(rows) // 3)  # ceil: one request per server page


def test_query_asks_for_its_page_size_and_gets_next_links(bc, raw):
    prefix = f"PS{uuid.uuid4().hex[:6].upper()}"
    for i in range(5):
        bc.upsert_customer(customer={"name": f"Small page {i}", "currency": "USD"}, external_id=f"{prefix}-{i}")

    rows = list(bc.query(q="customers?$filter=displayName ge 'Small page' and displayName le 'Small page 9'", limit=2))
    first = raw("GET", "customers", params={"$filter": "displayName ge 'Small page'"}, headers={"Prefer": "odata.maxpagesize=2"})

    assert len([r for r in rows if r["number"].startswith(prefix)]) == 5
    assert calls("query customers").count() >= 3
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=2" and "$skiptoken=" in first.json()["@odata.nextLink"]


# --- rate limit --------------------------------------------------------------------------------------------
def test_a_429_from_the_request_window_is_waited_out(bc, bc_server):
    customer_id = a_customer(bc)
    bc_server.settings(rate_limit_requests=2, rate_limit_window_seconds=2)

    started = time.monotonic()
    for i in range(3):
        bc.upsert_customer(customer={"name": f"Busy {i}", "currency": "USD"}, external_id=f"BUSY-{uuid.uuid4().hex[:6].upper()}")

    assert time.monotonic() - started >= 1
    assert ConnectorCall.objects.filter(system="business_central", status_code=429).exists()
    assert ConnectorCall.objects.filter(system="business_central", status_code=429).values_list("error_class", flat=True).first() == "rate_limit"
    assert customer_id


def test_a_long_429_is_a_rate_limit_error_with_retry_after(bc, bc_server, raw):
    bc_server.settings(rate_limit_requests=1, rate_limit_window_seconds=300)
    raw("GET", "items")  # the client's one request in this window

    with pytest.raises(ConnectorError) as caught:
        bc.upsert_customer(customer={"name": "Throttled", "currency": "USD"}, external_id=key("CUS"))

    assert caught.value.error_class == ErrorClass.RATE_LIMIT and caught.value.transient
    assert 200 < caught.value.retry_after <= 300
    refused = raw("GET", "items")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 200


# --- the bearer token --------------------------------------------------------------------------------------
def test_the_token_is_fetched_once_and_reused(bc):
    before = TokenGrant.objects.count()
    customer_id = a_customer(bc)
    bc.get_customer(external_id="NOPE")
    bc.health()
    assert TokenGrant.objects.count() - before == 1 and bc.credentials.fetched == 1
    assert customer_id


def test_the_token_is_refreshed_shortly_before_it_expires(bc, bc_server):
    bc_server.settings(token_lifetime_seconds=4)  # refreshed a quarter of its life early: after 3 s
    bc.health()
    bc.health()
    assert bc.credentials.fetched == 1
    time.sleep(3.2)
    bc.health()
    assert bc.credentials.fetched == 2
    assert TokenGrant.objects.count() == 2


def test_a_revoked_token_is_replaced_once_on_401(bc, bc_server):
    bc.health()
    time.sleep(1.1)  # tokens are stamped to the second
    bc_server.revoke_tokens()

    assert bc.health()["ok"] is True

    assert bc.credentials.fetched == 2
    assert calls("get company", 401).count() == 1 and calls("get company", 200).count() == 2


def test_a_wrong_client_secret_is_an_auth_error(bc, settings):
    settings.CONNECTORS = {**settings.CONNECTORS, "business_central": {**settings.CONNECTORS["business_central"], "client_secret": "wrong"}}

    with pytest.raises(ConnectorError) as caught:
        BusinessCentralConnector.from_settings().health()

    assert caught.value.error_class == ErrorClass.AUTH and caught.value.code == "invalid_client"
    assert "AADSTS7000215" in caught.value.message
