"""Pure units: the one classifier and each vendor's code table.

Each vendor client used to carry its own status/code ladder. The ladders are kept here, as
they were, as oracles: the table-driven classifier must give the same class for every
status and code they could see (property tests), apart from the few codes named below.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.connectors.errors import STATUS_ONLY, CodeTable, classify
from sync.connectors.netsuite.client import ERROR_CODES as NETSUITE
from sync.connectors.salesforce.transport import ERROR_CODES as SALESFORCE
from sync.connectors.stripe.client import ERROR_CODES as STRIPE
from sync.models import ErrorClass

# --- the ladders as they were -----------------------------------------------------------------
GENERIC_RATE = {"REQUEST_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED", "RATE_LIMIT", "CONCURRENCY_LIMIT_EXCEEDED"}
GENERIC_AUTH = {"INVALID_SESSION_ID", "INVALID_LOGIN", "INVALID_AUTH_HEADER"}
GENERIC_CONFLICT = {"IDEMPOTENCY_ERROR", "ENTITY_IS_LOCKED", "UNABLE_TO_LOCK_ROW"}
GENERIC_DUPLICATE = {"DUPLICATE_VALUE", "DUPLICATES_DETECTED", "DUPLICATE_EXTERNAL_ID"}


def old_classify_status(status: int, code: str = "") -> str:  # sync/connectors/base.py
    code = (code or "").upper()
    if status == 429 or code in GENERIC_RATE:
        return "rate_limit"
    if status in (401, 403) or code in GENERIC_AUTH:
        return "auth"
    if status == 404:
        return "not_found"
    if status == 409 or code in GENERIC_CONFLICT:
        return "conflict"
    if code in GENERIC_DUPLICATE or status == 300:
        return "duplicate"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "unavailable"
    return "validation"


def old_salesforce(status: int, code: str) -> str:  # salesforce/client.py error_from_salesforce
    if status == 300:
        return "duplicate"
    if status == 401:
        return "auth"
    if status == 403:
        return "rate_limit" if code == "REQUEST_LIMIT_EXCEEDED" else "auth"
    return old_classify_status(status, code)


def old_netsuite(status: int, code: str) -> str:  # netsuite/client.py error_from_response
    if status == 429 or code in {"REQUEST_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED", "WS_REQUEST_BLOCKED", "CONCURRENCY_LIMIT_EXCEEDED"}:
        return "rate_limit"
    if status in (401, 403) or code == "INVALID_LOGIN":
        return "auth"
    if status == 404:
        return "not_found"
    if code in {"DUP_RCRD", "DUP_ENTITY", "DUP_ITEM", "DUPLICATE_EXTERNAL_ID"}:
        return "duplicate"
    if status == 409 or code in {"IDEMPOTENCY_ERROR", "RCRD_HAS_BEEN_CHANGED", "RCRD_LOCKED_BY_WF"}:
        return "conflict"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "unavailable"
    return "validation"


def old_stripe(status: int, code: str, kind: str) -> str:  # stripe/client.py classify_stripe_error
    # stripe-python's exception classes, as it picks them: RateLimitError for 429 or a 400 with code
    # rate_limit, AuthenticationError 401, PermissionError 403, IdempotencyError for that type on 400/404
    rate_limit_error = status == 429 or (status == 400 and code == "rate_limit")
    idempotency_error = status in (400, 404) and kind == "idempotency_error"
    if status == 429 or rate_limit_error or code in ("rate_limit", "lock_timeout"):
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 404 or code == "resource_missing":
        return "not_found"
    if kind == "idempotency_error" or status == 409 or idempotency_error:
        return "conflict"
    if code == "resource_already_exists":
        return "duplicate"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "unavailable"
    return "validation"


def codes(*known: set[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(sorted(set().union(*known))), st.just(""), st.text(alphabet="ABCDEFGHIJ_", max_size=12))


STATUSES = st.one_of(st.sampled_from([300, 400, 401, 403, 404, 405, 408, 409, 415, 422, 429, 500, 502, 503, 504]), st.integers(min_value=400, max_value=599))

# --- same results as the ladders ----------------------------------------------------------------
SALESFORCE_CODES = GENERIC_RATE | GENERIC_AUTH | GENERIC_CONFLICT | GENERIC_DUPLICATE
NOT_SALESFORCE_CODES = {"SSS_REQUEST_LIMIT_EXCEEDED", "RATE_LIMIT", "CONCURRENCY_LIMIT_EXCEEDED", "IDEMPOTENCY_ERROR"}


@given(status=STATUSES, code=codes(SALESFORCE_CODES - NOT_SALESFORCE_CODES, {"INVALID_FIELD", "MALFORMED_QUERY", "NOT_FOUND"}))
def test_salesforce_classifies_as_its_ladder_did(status, code):
    assert classify(status, code, SALESFORCE) == old_salesforce(status, code)


@pytest.mark.parametrize("code", sorted(NOT_SALESFORCE_CODES))
def test_codes_salesforce_never_sends_are_no_longer_in_its_table(code):
    """The old generic ladder mixed NetSuite's and Stripe's codes into Salesforce's; each vendor now has its own."""
    assert classify(400, code, SALESFORCE) == ErrorClass.VALIDATION
    assert classify(400, code, NETSUITE) != ErrorClass.VALIDATION or classify(400, code, STRIPE) != ErrorClass.VALIDATION


@given(status=STATUSES.filter(lambda s: s >= 400), code=codes(set(NETSUITE.codes), {"INVALID_CONTENT", "USER_ERROR"}))
def test_netsuite_classifies_as_its_ladder_did(status, code):
    assert classify(status, code, NETSUITE) == old_netsuite(status, code)


@given(
    status=STATUSES.filter(lambda s: s >= 400),
    code=st.sampled_from(
        ["", "rate_limit", "lock_timeout", "resource_missing", "resource_already_exists", "parameter_invalid_empty", "card_declined", "idempotency_key_in_use"]
    ),
    kind=st.sampled_from(["", "api_error", "card_error", "idempotency_error", "invalid_request_error"]),
)
def test_stripe_classifies_as_its_ladder_did(status, code, kind):
    assert classify(status, (code, kind), STRIPE) == old_stripe(status, code, kind)


@given(status=st.integers(min_value=300, max_value=599))
def test_a_status_alone_means_the_same_to_every_table(status):
    expected = old_classify_status(status)
    assert classify(status) == classify(status, None, SALESFORCE) == classify(status, "", NETSUITE) == classify(status, ("", ""), STRIPE) == expected


# --- the rules, case by case --------------------------------------------------------------------
@pytest.mark.parametrize(
    "table, status, code, expected",
    [
        (SALESFORCE, 403, "REQUEST_LIMIT_EXCEEDED", "rate_limit"),  # the org's daily API limit
        (SALESFORCE, 403, "INSUFFICIENT_ACCESS", "auth"),
        (SALESFORCE, 401, "REQUEST_LIMIT_EXCEEDED", "auth"),  # a 401 is decisive
        (SALESFORCE, 300, "DUPLICATE_VALUE", "duplicate"),
        (SALESFORCE, 400, "DUPLICATE_VALUE", "duplicate"),
        (SALESFORCE, 400, "duplicates_detected", "duplicate"),  # codes compare without regard to case
        (SALESFORCE, 409, "DUPLICATE_VALUE", "conflict"),
        (SALESFORCE, 400, "UNABLE_TO_LOCK_ROW", "conflict"),
        (SALESFORCE, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "validation"),
        (SALESFORCE, 503, "SERVER_UNAVAILABLE", "unavailable"),
        (NETSUITE, 429, "REQUEST_LIMIT_EXCEEDED", "rate_limit"),
        (NETSUITE, 400, "SSS_REQUEST_LIMIT_EXCEEDED", "rate_limit"),  # RESTlet concurrency
        (NETSUITE, 400, "WS_REQUEST_BLOCKED", "rate_limit"),
        (NETSUITE, 401, "INVALID_LOGIN", "auth"),
        (NETSUITE, 409, "DUP_RCRD", "duplicate"),  # NetSuite ranks a duplicate above a 409
        (NETSUITE, 400, "IDEMPOTENCY_ERROR", "conflict"),
        (NETSUITE, 400, "INVALID_CONTENT", "validation"),
        (NETSUITE, 500, "UNEXPECTED_ERROR", "unavailable"),
        (STRIPE, 429, ("rate_limit", "invalid_request_error"), "rate_limit"),
        (STRIPE, 400, ("lock_timeout", "invalid_request_error"), "rate_limit"),
        (STRIPE, 400, ("", "idempotency_error"), "conflict"),
        (STRIPE, 404, ("resource_missing", "invalid_request_error"), "not_found"),
        (STRIPE, 400, ("resource_already_exists", "invalid_request_error"), "duplicate"),
        (STRIPE, 402, ("card_declined", "card_error"), "validation"),
        (STRIPE, 401, ("", "invalid_request_error"), "auth"),
        (STATUS_ONLY, 408, None, "timeout"),
        (STATUS_ONLY, 504, None, "timeout"),
        (STATUS_ONLY, 599, None, "unavailable"),
        (STATUS_ONLY, 418, None, "validation"),
    ],
)
def test_status_and_code_pick_the_class(table, status, code, expected):
    assert classify(status, code, table) == expected


def test_a_table_refuses_a_code_under_two_classes_or_a_class_it_cannot_rank():
    with pytest.raises(ValueError, match="two classes"):
        CodeTable({ErrorClass.RATE_LIMIT: {"X"}, ErrorClass.AUTH: {"x"}})
    with pytest.raises(ValueError, match="precedence"):
        CodeTable({ErrorClass.MAPPING: {"UNKNOWN_SKU"}})
    with pytest.raises(ValueError, match="precedence"):
        CodeTable(precedence=(ErrorClass.RATE_LIMIT,))


# --- infrastructure errors: transient, never mapping (issue 19) ----------------------------------------
def test_lost_connections_and_timeouts_anywhere_in_the_chain_are_transient():

    import django.db
    import psycopg
    import redis.exceptions

    from sync.connectors.errors import infrastructure_error

    def chained(outer, inner):
        try:
            try:
                raise inner
            except Exception as exc:
                raise outer from exc
        except Exception as exc:
            return exc

    for exc in (
        django.db.OperationalError("terminating connection due to administrator command"),
        django.db.InterfaceError("connection already closed"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        redis.exceptions.ConnectionError("Error 111 connecting"),
        ConnectionResetError(104, "Connection reset by peer"),
        chained(RuntimeError("wrapped"), psycopg.OperationalError("consuming input failed")),
    ):
        found = infrastructure_error(exc)
        assert found is not None and found.transient and found.error_class == ErrorClass.UNAVAILABLE, exc
    for exc in (TimeoutError("timed out"), redis.exceptions.TimeoutError("Timeout reading")):
        assert infrastructure_error(exc).error_class == ErrorClass.TIMEOUT
    for exc in (KeyError("id"), ValueError("bad"), chained(KeyError("id"), ValueError("x"))):
        assert infrastructure_error(exc) is None, exc
