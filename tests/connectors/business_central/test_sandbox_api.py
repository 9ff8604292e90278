"""The Business Central sandbox as any client sees it (plain requests): Entra's token errors, BC's
error bodies, $filter / $select / $orderby / $top, deep insert, draft and posted documents,
journal posting rules, GET-only sets, the shared fault kit."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import requests

pytestmark = pytest.mark.django_db(transaction=True)
SCOPE = "https://api.businesscentral.dynamics.com/.default"


def token_request(bc, settings, **overrides) -> requests.Response:
    config = settings.CONNECTORS["business_central"]
    form = {"client_id": config["client_id"], "client_secret": config["client_secret"], "grant_type": "client_credentials", "scope": SCOPE, **overrides}
    return requests.post(bc.credentials.token_url, data=form, timeout=10)


def error(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def a_customer(raw, **fields) -> dict:
    response = raw("POST", "customers", json={"displayName": "Umbrella Corp", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_the_token_endpoint_speaks_entra(bc, settings):
    good = token_request(bc, settings)
    assert good.status_code == 200
    assert {k: good.json()[k] for k in ("token_type", "expires_in")} == {"token_type": "Bearer", "expires_in": 3599}
    assert good.json()["access_token"].count(".") == 2  # a JWT

    secret, scope, grant = (
        token_request(bc, settings, client_secret="nope"),
        token_request(bc, settings, scope="https://graph.microsoft.com/.default"),
        token_request(bc, settings, grant_type="password"),
    )
    assert (secret.status_code, secret.json()["error"]) == (401, "invalid_client") and "AADSTS7000215" in secret.json()["error_description"]
    assert (scope.status_code, scope.json()["error"]) == (400, "invalid_scope")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")


def test_the_api_refuses_a_missing_or_forged_token(bc, raw):
    bare = requests.get(f"{raw.company}/customers", timeout=10)
    forged = requests.get(f"{raw.company}/customers", headers={"Authorization": "Bearer a.b.c"}, timeout=10)
    assert error(bare) == (401, "Authentication_InvalidCredentials") and "authorization_uri" in bare.headers["WWW-Authenticate"]
    assert error(forged) == (401, "Authentication_InvalidCredentials")


def test_bad_bodies_get_bcs_error_codes(raw):
    number = f"C-{uuid.uuid4().hex[:6].upper()}"
    a_customer(raw, number=number)
    assert error(raw("POST", "customers", json={"displayName": "x", "colour": "red"})) == (400, "BadRequest_InvalidRequestUrl")
    assert error(raw("POST", "customers", json={"displayName": "x", "balanceDue": 5})) == (400, "BadRequest_InvalidOperation")
    assert error(raw("POST", "customers", json={"displayName": "x" * 101})) == (400, "Application_StringExceededLength")
    assert error(raw("POST", "customers", json={"displayName": "x", "type": "Robot"})) == (400, "Application_EvaluateException")
    assert error(raw("POST", "customers", json={"displayName": "Again", "number": number.lower()})) == (409, "Internal_EntityWithSameKeyExists")
    assert error(raw("GET", f"customers({uuid.uuid4()})")) == (404, "BadRequest_NotFound")
    assert error(raw("POST", "items", json={"number": "NEW"})) == (405, "BadRequest_MethodNotAllowed")
    assert error(raw("POST", "salesOrders", json={"orderDate": "2026-03-01"}))[1] == "Application_DialogException"  # no customer


def test_code_fields_are_upper_case_and_text_filters_ignore_case(raw):
    customer = a_customer(raw, number="low-case-1", displayName="Globex Corporation")
    assert customer["number"] == "LOW-CASE-1"
    found = raw("GET", "customers", params={"$filter": "displayName eq 'GLOBEX corporation' and number eq 'low-case-1'", "$select": "id,number"}).json()[
        "value"
    ]
    assert found == [{"@odata.etag": customer["@odata.etag"], "id": customer["id"], "number": "LOW-CASE-1"}]


def test_filter_orderby_top_and_skip(raw):
    tag = uuid.uuid4().hex[:6].upper()
    made = [a_customer(raw, number=f"{tag}-{i}", displayName=f"Sort {tag} {i}", creditLimit=i * 100) for i in range(5)]
    since = made[2]["lastModifiedDateTime"]

    def numbers(**params) -> list[str]:
        response = raw("GET", "customers", params=params)
        assert response.status_code == 200, response.text
        return [c["number"] for c in response.json()["value"] if c["number"].startswith(tag)]

    assert numbers(**{"$filter": f"lastModifiedDateTime ge {since}"}) == [f"{tag}-{i}" for i in (2, 3, 4)]
    assert numbers(**{"$filter": "creditLimit gt 150 and creditLimit le 300 or number eq '" + f"{tag}-0'"}) == [f"{tag}-{i}" for i in (0, 2, 3)]
    assert numbers(**{"$filter": f"not (number eq '{tag}-1')", "$orderby": "creditLimit desc", "$top": "2"}) == [f"{tag}-4", f"{tag}-3"]
    assert numbers(**{"$orderby": "number", "$skip": "3"}) == [f"{tag}-3", f"{tag}-4"]
    assert error(raw("GET", "customers", params={"$filter": "number eq"}))[0] == 400
    assert error(raw("GET", "customers", params={"$filter": "colour eq 'red'"}))[0] == 400


def test_a_sales_order_is_created_with_its_lines_in_one_deep_insert(raw):
    customer = a_customer(raw)
    order = raw(
        "POST",
        "salesOrders",
        json={
            "customerNumber": customer["number"],
            "externalDocumentNumber": "so-deep-1",
            "salesOrderLines": [
                {"lineType": "Item", "lineObjectNumber": "PLAT-SEAT", "quantity": 10},
                {"lineObjectNumber": "SUPPORT-PREM", "quantity": 1, "unitPrice": 1200, "discountAmount": 200},
            ],
        },
    )
    assert order.status_code == 201, order.text
    body = order.json()
    assert (body["status"], body["externalDocumentNumber"], body["customerId"], body["currencyCode"]) == ("Draft", "SO-DEEP-1", customer["id"], "USD")
    assert Decimal(str(body["totalAmountIncludingTax"])) == Decimal("1450")  # 10 × 45 (the item's price) + 1200 − 200
    lines = raw("GET", f"salesOrders({body['id']})/salesOrderLines").json()["value"]
    assert [(line["lineObjectNumber"], line["description"], line["sequence"]) for line in lines] == [
        ("PLAT-SEAT", "Platform seat (monthly)", 10000),
        ("SUPPORT-PREM", "Premium support", 20000),
    ]
    refused = raw("PATCH", f"salesOrders({body['id']})", json={"salesOrderLines": []}, headers={"If-Match": body["@odata.etag"]})
    assert refused.status_code == 400
    unknown = raw("POST", f"salesOrders({body['id']})/salesOrderLines", json={"lineObjectNumber": "NO-SUCH-ITEM", "quantity": 1})
    assert error(unknown) == (400, "Internal_InvalidTableRelation")
    changed = raw("GET", f"salesOrders({body['id']})").json()["@odata.etag"]
    assert changed == body["@odata.etag"]  # a refused line changed nothing


def test_a_line_change_gives_the_document_a_new_etag(raw):
    customer = a_customer(raw)
    order = raw("POST", "salesOrders", json={"customerId": customer["id"]}).json()
    raw("POST", f"salesOrders({order['id']})/salesOrderLines", json={"lineObjectNumber": "PLAT-SEAT", "quantity": 2})
    stale = raw("PATCH", f"salesOrders({order['id']})", json={"orderDate": "2026-03-04"}, headers={"If-Match": order["@odata.etag"]})
    assert error(stale) == (409, "Request_EntityChanged")
    gone = raw("DELETE", f"salesOrders({order['id']})", headers={"If-Match": order["@odata.etag"]})
    assert error(gone) == (409, "Request_EntityChanged")
    assert raw("DELETE", f"salesOrders({order['id']})").status_code == 204  # DELETE checks an ETag only when sent
    assert error(raw("GET", f"salesOrders({order['id']})"))[0] == 404


def test_draft_and_posted_invoices(raw):
    customer = a_customer(raw)
    empty = raw("POST", "salesInvoices", json={"customerId": customer["id"]}).json()
    assert error(raw("POST", f"salesInvoices({empty['id']})/Microsoft.NAV.post")) == (400, "Application_DialogException")

    draft = raw("POST", "salesInvoices", json={"customerId": customer["id"], "salesInvoiceLines": [{"lineObjectNumber": "PLAT-API", "quantity": 1}]}).json()
    assert (draft["status"], draft["number"][:5]) == ("Draft", "S-INV")
    assert raw("POST", f"salesInvoices({draft['id']})/Microsoft.NAV.post", headers={"If-Match": draft["@odata.etag"]}).status_code == 204
    posted = raw("GET", f"salesInvoices({draft['id']})").json()
    assert (posted["status"], posted["number"][:6], Decimal(str(posted["remainingAmount"]))) == ("Open", "PS-INV", Decimal(500))

    assert error(raw("POST", f"salesInvoices({draft['id']})/Microsoft.NAV.post")) == (400, "Application_DialogException")
    assert (
        error(raw("POST", f"salesInvoices({draft['id']})/salesInvoiceLines", json={"lineObjectNumber": "PLAT-SEAT", "quantity": 1}))[1]
        == "Application_DialogException"
    )
    assert error(raw("DELETE", f"salesInvoices({draft['id']})"))[1] == "Application_DialogException"
    assert error(raw("POST", f"salesInvoices({draft['id']})/Microsoft.NAV.shipAndInvoice"))[0] == 400


def test_journal_posting_rules(raw):
    customer = a_customer(raw)
    journal = raw("POST", "customerPaymentJournals", json={"code": "t-" + uuid.uuid4().hex[:6]}).json()
    assert journal["code"] == journal["code"].upper() and journal["balancingAccountNumber"] == "10100"
    assert error(raw("POST", f"customerPaymentJournals({journal['id']})/Microsoft.NAV.post")) == (400, "Application_DialogException")  # nothing to post

    invoice = raw("POST", "salesInvoices", json={"customerId": customer["id"], "salesInvoiceLines": [{"lineObjectNumber": "PLAT-SEAT", "quantity": 2}]}).json()
    draft_refused = raw(
        "POST",
        f"customerPaymentJournals({journal['id']})/customerPayments",
        json={"customerId": customer["id"], "appliesToInvoiceId": invoice["id"], "amount": -90},
    )
    assert error(draft_refused) == (400, "Application_DialogException")
    raw("POST", f"salesInvoices({invoice['id']})/Microsoft.NAV.post")

    positive = raw("POST", f"customerPaymentJournals({journal['id']})/customerPayments", json={"appliesToInvoiceId": invoice["id"], "amount": 90})
    assert positive.status_code == 201 and positive.json()["customerId"] == customer["id"] and positive.json()["documentNumber"].startswith("G")
    assert error(raw("POST", f"customerPaymentJournals({journal['id']})/Microsoft.NAV.post")) == (
        400,
        "Application_FieldValidationException",
    )  # must be negative

    fixed = raw("PATCH", f"customerPaymentJournals({journal['id']})/customerPayments({positive.json()['id']})", json={"amount": -90}, headers={"If-Match": "*"})
    assert fixed.status_code == 200
    assert raw("POST", f"customerPaymentJournals({journal['id']})/Microsoft.NAV.post").status_code == 204
    assert raw("GET", f"customerPaymentJournals({journal['id']})/customerPayments").json()["value"] == []
    paid = raw("GET", f"salesInvoices({invoice['id']})").json()
    assert (paid["status"], paid["remainingAmount"]) == ("Paid", 0)


def test_the_shared_fault_kit_answers_in_bcs_words(raw, bc_server):
    bc_server.faults(outage=True)
    assert error(raw("GET", "customers")) == (503, "Internal_TenantUnavailable")
    bc_server.faults(outage=False, rate_limit_retry_after=7, rate_limit_requests=1)
    limited = raw("GET", "customers")
    assert error(limited) == (429, "Application_TooManyRequests") and limited.headers["Retry-After"] == "7"
    assert raw("GET", "customers").status_code == 200
