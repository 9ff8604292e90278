"""Business Central mapping and error classification: pure functions, no server."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from sync.connectors.business_central import mapper, webhook
from sync.connectors.business_central.auth import ClientCredentials
from sync.connectors.business_central.client import error_from_response
from sync.models import ErrorClass


def response(status: int, body: dict | str, headers: dict | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    r.headers.update(headers or {})
    return r


def bc_error(status: int, code: str, message: str = "m", **headers) -> requests.Response:
    return response(status, {"error": {"code": code, "message": message}}, headers)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (409, "Request_EntityChanged", ErrorClass.CONFLICT),
        (409, "Internal_EntityWithSameKeyExists", ErrorClass.DUPLICATE),
        (412, "", ErrorClass.CONFLICT),
        (400, "BadRequest_InvalidToken", ErrorClass.VALIDATION),
        (400, "Application_DialogException", ErrorClass.VALIDATION),
        (400, "Application_StringExceededLength", ErrorClass.VALIDATION),
        (400, "Internal_RecordNotFound", ErrorClass.NOT_FOUND),
        (404, "BadRequest_NotFound", ErrorClass.NOT_FOUND),
        (401, "Authentication_InvalidCredentials", ErrorClass.AUTH),
        (401, "Authenciation_InvalidCredentials", ErrorClass.AUTH),
        (403, "Authorization_InsufficientPermissions", ErrorClass.AUTH),
        (429, "Application_TooManyRequests", ErrorClass.RATE_LIMIT),
        (503, "Internal_TenantUnavailable", ErrorClass.UNAVAILABLE),
        (500, "Internal_ServerError", ErrorClass.UNAVAILABLE),
        (504, "", ErrorClass.TIMEOUT),
    ],
)
def test_bc_error_codes_map_onto_the_error_classes(status, code, expected):
    error = error_from_response(bc_error(status, code, "Another user has already changed the record."))
    assert error.error_class == expected
    assert error.status_code == status and error.system == "business_central"
    if code:
        assert error.code == code and error.message == "Another user has already changed the record."


def test_an_error_carries_retry_after():
    assert error_from_response(bc_error(429, "Application_TooManyRequests", **{"Retry-After": "42"})).retry_after == 42


def test_a_body_that_is_not_bcs_still_classifies_by_status():
    assert error_from_response(response(502, "<html>bad gateway</html>")).error_class == ErrorClass.UNAVAILABLE


def test_bc_code_keeps_upper_case_keys_that_fit_and_digests_the_rest():
    assert mapper.bc_code("SO-00042", 35) == "SO-00042"
    lower = mapper.bc_code("so-00042", 35)
    assert lower.startswith("SO-00042~") and lower != mapper.bc_code("SO-00042", 35)
    long = mapper.bc_code("CUST-001Dn00000ABCDEFGHIJ", 20)
    assert len(long) == 20 and long == long.upper() and long == mapper.bc_code("CUST-001Dn00000ABCDEFGHIJ", 20)
    assert mapper.bc_code("CUST-001DN00000ABCDEFGHIJ", 20) != long  # two keys that differ only by case stay two customers


def test_odata_strings_double_their_quotes():
    assert mapper.eq_filter("displayName", "O'Brien & Co") == "displayName eq 'O''Brien & Co'"
    assert mapper.any_of("number", ["A", "B"]) == "number eq 'A' or number eq 'B'"


def test_a_billed_line_keeps_billings_amount():
    assert mapper.billed_line({"sku": "S", "quantity": "3", "unit_amount": "10.00", "amount": "30.00"}, index=0) == {
        "lineType": "Item",
        "lineObjectNumber": "S",
        "quantity": Decimal(3),
        "unitPrice": Decimal("10.00"),
    }
    prorated = mapper.billed_line({"sku": "S", "quantity": "3", "unit_amount": "10.00", "amount": "25.00"}, index=0)
    assert prorated["discountAmount"] == Decimal("5.00")
    rounded = mapper.billed_line({"sku": "S", "quantity": "3", "unit_amount": "1.00", "amount": "10.00"}, index=0)
    assert rounded["unitPrice"] == Decimal("3.33333")  # 3 × 3.33333 is 10.00 to the cent, as BC rounds a line
    derived = mapper.billed_line({"sku": "S", "quantity": "4", "amount": "10.00"}, index=0)
    assert derived["unitPrice"] == Decimal("2.50") and "discountAmount" not in derived
    with pytest.raises(mapper.MappingError) as caught:
        mapper.billed_line({"sku": "S", "quantity": "3000", "unit_amount": "0.0001", "amount": "1.00"}, index=2)  # no 5-decimal price makes it
    assert caught.value.field == "lines[2].amount"


def test_a_payment_is_a_negative_journal_line_applied_to_its_invoice():
    body = mapper.payment_body(
        {"payment_id": "pi_1", "invoice_number": "INV-1", "amount": "450", "received_at": "2026-03-05T23:30:00-05:00"},
        customer_id="c",
        invoice_id="i",
        document_number="PAY-1",
        external_document_number="PAY-1",
    )
    assert body["amount"] == Decimal("-450.00") and body["appliesToInvoiceId"] == "i"
    assert body["postingDate"] == "2026-03-06"  # the UTC day
    with pytest.raises(mapper.MappingError):
        mapper.payment_body({"amount": "0", "received_at": "2026-03-05"}, customer_id="c", invoice_id=None, document_number="D", external_document_number="D")


def test_lines_bc_filled_in_are_not_a_difference():
    wanted = [{"lineType": "Item", "lineObjectNumber": "PLAT-SEAT", "quantity": Decimal(2), "unitPrice": Decimal("45")}]
    have = [
        {"lineType": "Item", "lineObjectNumber": "PLAT-SEAT", "description": "Platform seat", "quantity": 2, "unitPrice": Decimal("45.00"), "discountAmount": 0}
    ]
    assert mapper.same_lines(have, wanted)
    assert not mapper.same_lines(have, [{**wanted[0], "quantity": Decimal(3)}])
    assert not mapper.same_lines(have, [{**wanted[0], "description": "Other"}])
    assert not mapper.same_lines(have, wanted * 2)


def test_bc_views_map_back_to_canonical_words():
    invoice = mapper.invoice_from_bc(
        {
            "id": "i",
            "number": "PS-INV103001",
            "status": "Paid",
            "totalAmountIncludingTax": 450,
            "remainingAmount": 0,
            "dueDate": "0001-01-01",
            "currencyCode": "USD",
        },
        [],
        external_id="INV-1",
    )
    assert (invoice["status"], invoice["posted"], invoice["amount_remaining"], invoice["total"]) == ("paid", True, "0.00", "450.00")
    assert "due_date" not in invoice  # BC's blank date
    order = mapper.sales_order_from_bc({"id": "o", "status": "Draft", "totalAmountIncludingTax": Decimal("1740")}, [], external_id="SO-1")
    assert (order["status"], order["total"], order["external_id"]) == ("open", "1740.00", "SO-1")


def test_the_handshake_echoes_the_validation_token():
    assert webhook.handshake({"validationToken": "abc"}) == "abc"
    assert webhook.handshake({}) is None
    assert webhook.parse_resource(f"api/v2.0/companies({'1' * 8}-1111-1111-1111-{'1' * 12})/salesInvoices({'2' * 8}-2222-2222-2222-{'2' * 12})") == {
        "company": f"{'1' * 8}-1111-1111-1111-{'1' * 12}",
        "entity_set": "salesInvoices",
        "id": f"{'2' * 8}-2222-2222-2222-{'2' * 12}",
    }


def test_the_token_is_refreshed_a_quarter_of_a_short_life_early_and_five_minutes_of_a_long_one():
    assert ClientCredentials.refresh_leeway(3599) == 300
    assert ClientCredentials.refresh_leeway(8) == 2
