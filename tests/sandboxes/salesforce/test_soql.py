"""The sandbox's SOQL parser and evaluator (pure units)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sandboxes.salesforce import soql


def test_it_parses_the_forms_the_connector_issues():
    q = soql.parse(
        "SELECT Id, Account.Name FROM Order WHERE Status = 'Draft' AND SystemModstamp > 2026-01-31T10:00:00.000Z ORDER BY SystemModstamp, Id DESC LIMIT 50"
    )

    assert q.fields == ["Id", "Account.Name"] and q.sobject == "Order" and q.limit == 50
    assert [(o.field, o.descending) for o in q.order_by] == [("SystemModstamp", False), ("Id", True)]
    assert soql.field_names(q.where) == ["Status", "SystemModstamp"]


@pytest.mark.parametrize(
    "where, record, expected",
    [
        ("Name = 'acme'", {"Name": "ACME"}, True),  # case-insensitive
        ("Name != 'acme'", {"Name": "Globex"}, True),
        ("Name LIKE 'Ac%'", {"Name": "Acme"}, True),
        ("Name LIKE 'Ac_e'", {"Name": "Acne"}, True),
        ("Amount >= 10.5", {"Amount": Decimal("10.5")}, True),
        ("Amount > 10.5", {"Amount": Decimal("10.5")}, False),
        ("IsWon = true", {"IsWon": True}, True),
        ("IsWon = false", {"IsWon": True}, False),
        ("CloseDate > 2026-01-01", {"CloseDate": date(2026, 1, 2)}, True),
        ("SystemModstamp > 2026-01-01T00:00:00Z", {"SystemModstamp": datetime(2026, 1, 1, tzinfo=UTC)}, False),
        ("SystemModstamp >= 2026-01-01T01:00:00+01:00", {"SystemModstamp": datetime(2026, 1, 1, tzinfo=UTC)}, True),
        ("Status IN ('Draft', 'Activated')", {"Status": "activated"}, True),
        ("Status NOT IN ('Draft')", {"Status": "Draft"}, False),
        ("Description = null", {"Description": None}, True),
        ("Amount > 5", {"Amount": None}, False),
        ("(Name = 'x' OR Name = 'y') AND NOT IsWon = true", {"Name": "y", "IsWon": False}, True),
        ("Name = 'O\\'Brien'", {"Name": "O'Brien"}, True),
    ],
)
def test_where_clauses_evaluate_like_soql(where, record, expected):
    q = soql.parse(f"SELECT Id FROM Account WHERE {where}")

    assert soql.matches(q.where, lambda f: record.get(f)) is expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "SELECT FROM Account",
        "SELECT Id Account",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account LIMIT -1",
        "SELECT Id FROM Account WHERE Name = 'unterminated",
    ],
)
def test_malformed_queries_raise_malformed_query(bad):
    with pytest.raises(soql.SOQLError) as caught:
        soql.parse(bad)

    assert caught.value.code == "MALFORMED_QUERY"


def test_count_and_date_literals():
    q = soql.parse("SELECT COUNT() FROM Opportunity WHERE CloseDate = LAST_N_DAYS:7")

    assert q.count_only and soql.matches(q.where, lambda f: datetime.now(UTC).date())
