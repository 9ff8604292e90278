"""Date windows as the user means them: whole days in their own zone, To included, From = To is
that one day, and input that cannot be read is answered in words (pages) or problem+json (API)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from monitoring.kpis.window import window_from_params
from sync.models import FlowRun, FlowType
from tests.factories import FlowRunFactory

pytestmark = pytest.mark.django_db
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def in_new_york():
    """The viewer's zone, as UserTimezoneMiddleware activates it from the tz cookie."""
    with timezone.override(NEW_YORK):
        yield


def activated(number: str, started: datetime) -> FlowRun:
    return FlowRunFactory(
        flow_type=FlowType.ORDER_ACTIVATION,
        document_number=number,
        business_started_at=started,
        business_completed_at=started + timedelta(minutes=5),
        finished_at=started + timedelta(minutes=5),
    )


# --- the one reading of a window -------------------------------------------------------------------
def test_to_is_included_and_the_days_are_the_viewers_days():
    choice = window_from_params({"start": "2026-11-01", "end": "2026-11-30"}, tz=NEW_YORK, as_of=NOW)
    assert choice.errors == {} and choice.explicit
    assert choice.window.start == datetime(2026, 11, 1, tzinfo=NEW_YORK)
    assert choice.window.end == datetime(2026, 12, 1, tzinfo=NEW_YORK)  # the end of Nov 30, New York
    assert choice.window.end.astimezone(UTC) == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def test_from_equal_to_is_that_one_day():
    choice = window_from_params({"start": "2026-11-20", "end": "2026-11-20"}, tz=NEW_YORK, as_of=NOW)
    assert choice.errors == {}
    assert (choice.window.start, choice.window.end) == (datetime(2026, 11, 20, tzinfo=NEW_YORK), datetime(2026, 11, 21, tzinfo=NEW_YORK))


def test_a_day_across_a_daylight_saving_change_is_that_day_in_local_time():
    choice = window_from_params({"start": "2026-11-01", "end": "2026-11-01"}, tz=NEW_YORK, as_of=NOW)  # clocks go back at 2:00
    assert choice.window.end.astimezone(UTC) - choice.window.start.astimezone(UTC) == timedelta(hours=25)
    previous = choice.window.previous()  # the day before, also a whole local day
    assert (previous.start, previous.end) == (datetime(2026, 10, 31, tzinfo=NEW_YORK), datetime(2026, 11, 1, tzinfo=NEW_YORK))


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"start": "2026-02-30"}, "start", "2026-02-30 is not a date: February 2026 has 28 days."),
        ({"end": "2026-13-01"}, "end", "there is no month 13"),
        ({"start": "yesterday"}, "start", "“yesterday” is not a date; use YYYY-MM-DD"),
        ({"start": "2026-11-30", "end": "2026-11-01"}, "end", "To (Nov 1, 2026) is before From (Nov 30, 2026)"),
        ({"start": "0001-01-01"}, "start", "outside the dates the hub can show"),
        ({"days": "0"}, "days", "use a whole number from 1 to 3,660"),
        ({"days": "ten"}, "days", "“ten” is not a number of days"),
        ({"currency": "EURO"}, "currency", "three-letter ISO 4217 code"),
    ],
)
def test_input_that_cannot_be_read_is_named_with_a_reason_and_the_default_window_is_kept(params, field, words):
    choice = window_from_params(params, tz=NEW_YORK, as_of=NOW)
    assert words in choice.errors[field]
    assert (choice.window.start, choice.window.end) == (NOW - timedelta(days=30), NOW)


def test_only_from_runs_until_now_and_only_to_is_the_thirty_days_up_to_it():
    since = window_from_params({"start": "2026-12-01"}, tz=NEW_YORK, as_of=NOW).window
    assert (since.start, since.end) == (datetime(2026, 12, 1, tzinfo=NEW_YORK), NOW)
    until = window_from_params({"end": "2026-11-30"}, tz=NEW_YORK, as_of=NOW).window
    assert (until.start, until.end) == (datetime(2026, 11, 1, tzinfo=NEW_YORK), datetime(2026, 12, 1, tzinfo=NEW_YORK))  # 30 local days


def test_datetimes_are_instants_with_an_exclusive_end():
    window = window_from_params({"start": "2026-11-01T10:00:00Z", "end": "2026-11-01T12:00:00Z"}, as_of=NOW).window
    assert (window.start, window.end) == (datetime(2026, 11, 1, 10, tzinfo=UTC), datetime(2026, 11, 1, 12, tzinfo=UTC))


# --- pages -------------------------------------------------------------------------------------------
def test_the_orders_page_shows_the_flows_of_the_chosen_days_including_the_last_one(client, executive):
    activated("ORD-NOV-01", datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK))
    activated("ORD-NOV-30-LATE", datetime(2026, 11, 30, 23, 30, tzinfo=NEW_YORK))  # Dec 1, 04:30 UTC
    activated("ORD-DEC-01", datetime(2026, 12, 1, 0, 30, tzinfo=NEW_YORK))
    activated("ORD-OCT-31", datetime(2026, 10, 31, 23, 30, tzinfo=NEW_YORK))
    client.force_login(executive)
    client.cookies["tz"] = "America/New_York"
    html = client.get("/orders/", {"start": "2026-11-01", "end": "2026-11-30", "basis": "started"}).content.decode()
    assert "ORD-NOV-01" in html and "ORD-NOV-30-LATE" in html
    assert "ORD-DEC-01" not in html and "ORD-OCT-31" not in html
    assert 'name="start" value="2026-11-01"' in html and 'name="end" value="2026-11-30"' in html  # the form shows what was asked


def test_from_equal_to_on_a_page_shows_that_day_not_the_default_thirty_days(client, executive):
    activated("ORD-THE-DAY", datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    activated("ORD-DAY-BEFORE", datetime(2026, 11, 19, 9, 0, tzinfo=UTC))
    client.force_login(executive)
    html = client.get("/orders/", {"start": "2026-11-20", "end": "2026-11-20", "basis": "started"}).content.decode()
    assert "ORD-THE-DAY" in html and "ORD-DAY-BEFORE" not in html
    overview = client.get("/", {"start": "2026-11-20", "end": "2026-11-20"}).content.decode()
    assert "Nov 20, 2026" in overview.split('class="period"', 1)[1].split("</p>", 1)[0]


@pytest.mark.parametrize("path", ["/", "/orders/", "/amendments/", "/invoices/", "/sla/"])
def test_an_impossible_date_is_a_readable_message_on_every_kpi_page(client, executive, path):
    client.force_login(executive)
    response = client.get(path, {"start": "2026-02-30", "end": "2026-03-05"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "2026-02-30 is not a date: February 2026 has 28 days." in html and "Showing " in html


def test_from_after_to_says_so_over_htmx_too(client, executive):
    client.force_login(executive)
    response = client.get("/orders/", {"start": "2026-11-30", "end": "2026-11-01"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dashboard")
    assert "To (Nov 1, 2026) is before From (Nov 30, 2026)" in response.content.decode()


# --- the API -------------------------------------------------------------------------------------------
def test_the_api_reads_dates_as_whole_days_with_the_end_included(client, executive):
    client.force_login(executive)
    window = client.get("/api/v1/kpis/", {"start": "2026-11-20", "end": "2026-11-20", "tz": "America/New_York"}).json()["window"]
    assert window["start"] == "2026-11-20T00:00:00-05:00" and window["end"] == "2026-11-21T00:00:00-05:00"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-02-30", "end": "2026-03-01"}, "start"),
        ({"start": "2026-11-30", "end": "2026-11-01"}, "end"),
        ({"days": "x"}, "days"),
        ({"tz": "Mars/Olympus"}, "tz"),
    ],
)
def test_the_api_answers_unreadable_windows_with_problem_json_naming_the_field(client, executive, params, field):
    client.force_login(executive)
    response = client.get("/api/v1/kpis/", params)
    assert response.status_code == 400 and response["Content-Type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == field


def test_a_currency_the_window_could_not_use_does_not_empty_the_flow_list(client, executive):
    activated("ORD-ANY-CURRENCY", timezone.now() - timedelta(days=1))
    client.force_login(executive)
    assert "three-letter ISO 4217 code" in client.get("/orders/", {"currency": "EURO", "days": 30}).content.decode()
    table = client.get("/orders/", {"currency": "EURO", "days": 30}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="table").content.decode()
    assert table.lstrip().startswith('<div id="table">') and "ORD-ANY-CURRENCY" in table
