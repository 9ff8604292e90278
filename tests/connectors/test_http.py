"""Pure units: the one send — Retry-After waits (seconds or HTTP date, bounded), call records, timeouts.

A fake session stands in for the network, and sleeping and recording are captured; the
connector suites exercise the same code against the sandbox servers.
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from sync.connectors import http
from sync.connectors.errors import CodeTable, ConnectorError
from sync.connectors.http import WaitPolicy, parse_retry_after, send
from sync.models import ErrorClass


def answer(status: int, retry_after: str | None = None, body: bytes = b"{}") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


class FakeSession:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[dict] = []

    def request(self, method, url, **kwargs):
        self.calls.append({"method": method, "url": url, **kwargs})
        result = self.answers.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def recorded(monkeypatch):
    calls, sleeps = [], []
    monkeypatch.setattr(
        http, "record_call", lambda system, operation, status, error_class, started: calls.append((system, operation, status, str(error_class)))
    )
    monkeypatch.setattr(http.time, "sleep", sleeps.append)
    return calls, sleeps


def go(session, **kwargs):
    return send(session, "GET", "http://vendor.test/x", system="vendor", operation="GET x", timeout=5, **kwargs)


def test_a_429_with_retry_after_is_waited_out_and_each_attempt_recorded(recorded):
    calls, sleeps = recorded
    session = FakeSession(answer(429, "2"), answer(200))
    assert go(session).status_code == 200
    assert sleeps == [2.0]
    assert calls == [("vendor", "GET x", 429, "rate_limit"), ("vendor", "GET x", 200, "")]
    assert [c["timeout"] for c in session.calls] == [5, 5]


def test_an_http_date_retry_after_is_waited_out(recorded):
    _, sleeps = recorded
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    assert go(FakeSession(answer(429, when), answer(204))).status_code == 204
    assert len(sleeps) == 1 and 1.5 < sleeps[0] <= 3.0


def test_without_retry_after_the_wait_doubles_up_to_ten_seconds(recorded):
    _, sleeps = recorded
    session = FakeSession(*[answer(429)] * 4)
    assert go(session, waits=WaitPolicy(max_wait=100, max_attempts=4)).status_code == 429
    assert sleeps == [2.0, 4.0, 8.0] and len(session.calls) == 4


def test_a_vendor_may_choose_not_to_wait_without_retry_after(recorded):
    _, sleeps = recorded
    assert go(FakeSession(answer(503)), waits=WaitPolicy(statuses=frozenset({429, 503}), without_retry_after=None)).status_code == 503
    assert sleeps == []


def test_a_wait_beyond_the_bound_is_left_to_the_engine(recorded):
    calls, sleeps = recorded
    response = go(FakeSession(answer(429, "2"), answer(429, "5")), waits=WaitPolicy(max_wait=6))
    assert response.status_code == 429 and response.headers["Retry-After"] == "5"
    assert sleeps == [2.0] and len(calls) == 2


def test_only_the_listed_statuses_are_waited_out(recorded):
    _, sleeps = recorded
    assert go(FakeSession(answer(503, "1"))).status_code == 503
    assert sleeps == []


def test_failures_are_recorded_with_the_vendors_code(recorded):
    calls, _ = recorded
    table = CodeTable({ErrorClass.DUPLICATE: {"DUP_RCRD"}})
    go(FakeSession(answer(400, body=b'{"code": "DUP_RCRD"}')), table=table, code_of=lambda r: r.json()["code"])
    assert calls[-1][2:] == (400, "duplicate")


def test_a_timeout_and_a_refused_connection_raise_connector_errors_and_are_recorded(recorded):
    calls, _ = recorded
    with pytest.raises(ConnectorError) as slow:
        go(FakeSession(requests.ReadTimeout("slow")), label="Vendor")
    with pytest.raises(ConnectorError) as down:
        go(FakeSession(requests.ConnectionError("refused")), label="Vendor")
    assert (slow.value.error_class, slow.value.message, slow.value.system) == ("timeout", "Vendor did not answer within 5s", "vendor")
    assert (down.value.error_class, down.value.message) == ("unavailable", "cannot reach Vendor: ConnectionError")
    assert [c[2:] for c in calls] == [(None, "timeout"), (None, "unavailable")]


@pytest.mark.parametrize("value, expected", [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("", None), (None, None), ("soon", None)])
def test_retry_after_in_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date():
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert 55 <= parse_retry_after(future) <= 60
    assert parse_retry_after(past) == 0.0
