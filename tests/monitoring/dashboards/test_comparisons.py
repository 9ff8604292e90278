"""The Overview compares a window with the one before it only where the hub holds data for all
of it, and compares like with like: open exceptions now against those open when the previous
window ended (DESIGN.md, "Period comparisons")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from monitoring.kpis.exceptions import open_at
from monitoring.kpis.window import Window
from sync.models import FlowRun, FlowType, SyncException
from tests.factories import FlowRunFactory, SyncExceptionFactory

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def tile(html: str, key: str) -> str:
    return html.split(f'data-kpi="{key}"', 1)[1].split("</a>", 1)[0]


def activated(started: datetime, minutes: int = 10) -> FlowRun:
    done = started + timedelta(minutes=minutes)
    return FlowRunFactory(
        flow_type=FlowType.ORDER_ACTIVATION, business_started_at=started, business_completed_at=done, finished_at=done, status=FlowRun.Status.COMPLETED
    )


def test_a_previous_period_the_hub_holds_no_data_for_is_not_compared(client, executive):
    now = timezone.now()
    first = now - 10 * DAY  # the hub's first flow: 10 days ago
    activated(first)
    activated(now - 2 * DAY, minutes=30)
    client.force_login(executive)
    html = client.get("/").content.decode()  # the last 30 days: the 30 before them are not covered
    since = timezone.localtime(first)
    note = f"no comparison (data since {since:%b} {since.day}, {since.year})"
    for key in ("cycle", "lag", "sla", "exceptions", "amendments", "renewals"):
        assert note in tile(html, key), key
        assert " vs " not in tile(html, key), key
    assert note in html.split('class="period"', 1)[1].split("</p>", 1)[0]


def test_a_covered_previous_period_is_compared(client, executive):
    now = timezone.now()
    activated(now - 40 * DAY)  # data from 40 days ago: the week before last is covered
    activated(now - 10 * DAY, minutes=20)
    activated(now - 2 * DAY, minutes=10)
    client.force_login(executive)
    cycle = tile(client.get("/", {"days": 7}).content.decode(), "cycle")
    assert "no comparison" not in cycle
    assert "▼ -50%" in cycle and "vs 20m 00s" in cycle


def test_open_exceptions_now_are_compared_with_those_open_when_the_previous_window_ended(client, executive):
    now = timezone.now()
    activated(now - 30 * DAY)  # coverage for the previous week
    week_ago = now - 7 * DAY

    def exc(first_seen_days: float, closed_days: float | None = None, status: str = "resolved"):
        first_seen = now - first_seen_days * DAY
        extra = {"status": status, "resolved_at": now - closed_days * DAY} if closed_days is not None else {}
        return SyncExceptionFactory(first_seen=first_seen, last_seen=first_seen, **extra)

    exc(10)  # A: open all along
    exc(9, closed_days=3)  # B: open a week ago, resolved since
    exc(8, closed_days=6, status="ignored")  # E: open a week ago, ignored since
    exc(20, closed_days=6)  # G: open a week ago (opened before the previous week), resolved since
    exc(1)  # C: opened this week, open
    exc(2, closed_days=1)  # D: opened and resolved this week
    exc(3, closed_days=2)  # F: opened and resolved this week
    assert SyncException.objects.filter(status__in=SyncException.OPEN_STATUSES).count() == 2

    window = Window.last_days(7, as_of=now)
    assert open_at(window, window.end) == 2 and open_at(window, week_ago) == 4  # A, B, E, G were open a week ago

    client.force_login(executive)
    exceptions = tile(client.get("/", {"days": 7}).content.decode(), "exceptions")
    assert ">2<" in exceptions.replace(" ", "")
    assert "▼ -2" in exceptions and "vs 4 open at" in exceptions  # not "3 opened" (A, B, E opened in the week before)


def test_open_exceptions_at_the_end_of_a_past_window_are_counted_then_not_now(client, executive):
    activated(datetime(2026, 9, 1, tzinfo=UTC))
    SyncExceptionFactory(first_seen=datetime(2026, 10, 20, tzinfo=UTC), last_seen=datetime(2026, 10, 20, tzinfo=UTC))  # still open
    SyncExceptionFactory(
        first_seen=datetime(2026, 11, 1, 12, tzinfo=UTC),
        last_seen=datetime(2026, 11, 1, 12, tzinfo=UTC),
        status="resolved",
        resolved_at=datetime(2026, 11, 5, tzinfo=UTC),
    )
    SyncExceptionFactory(
        first_seen=datetime(2026, 11, 3, tzinfo=UTC),
        last_seen=datetime(2026, 11, 3, tzinfo=UTC),
        status="resolved",
        resolved_at=datetime(2026, 11, 4, tzinfo=UTC),
    )
    client.force_login(executive)
    exceptions = tile(client.get("/", {"start": "2026-11-01", "end": "2026-11-01"}).content.decode(), "exceptions")
    assert ">2<" in exceptions.replace(" ", "") and "open at the end of Nov 1" in exceptions  # not the 1 open today
    assert "vs 1 open at the end of Oct 31" in exceptions
