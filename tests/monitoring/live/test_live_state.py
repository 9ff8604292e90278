"""Live state that on-call can trust: /healthz says "degraded" while a connected system is down,
every page carries an outage banner, "last success" is the last successful call, and the steps
waiting to retry are counted with their next attempt and the attempts they have left."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sync.models import ConnectorCall, ConnectorState, FlowStep, FlowType
from tests.factories import FlowRunFactory, FlowStepFactory

pytestmark = pytest.mark.django_db


def calls(system: str, n: int, *, error_class: str = "", ago: timedelta = timedelta(seconds=20)) -> None:
    """n call records `ago` in the past (the records stamp `at` themselves on insert)."""
    ids = [ConnectorCall.objects.create(system=system, operation="test", status_code=503 if error_class else 200, error_class=error_class).pk for _ in range(n)]
    ConnectorCall.objects.filter(pk__in=ids).update(at=timezone.now() - ago)


def netsuite_circuit_open(since: timedelta = timedelta(minutes=3)) -> ConnectorState:
    opened = timezone.now() - since
    calls("netsuite", 6, error_class="unavailable", ago=timedelta(minutes=2))
    return ConnectorState.objects.create(
        system="netsuite",
        circuit=ConnectorState.Circuit.OPEN,
        opened_at=opened,
        consecutive_failures=6,
        last_error_at=opened,
        last_error="The netsuite service is temporarily unavailable (sandbox outage).",
    )


def waiting_step(number: str, *, attempts: int, next_in: timedelta, system: str = "netsuite", message: str = "HTTP 503 from NetSuite") -> FlowStep:
    run = FlowRunFactory(flow_type=FlowType.ORDER_ACTIVATION, document_number=number, status="waiting", business_completed_at=None)
    return FlowStepFactory(
        flow_run=run,
        seq=3,
        name="erp_sales_order",
        system=system,
        status=FlowStep.Status.RETRY,
        attempts=attempts,
        next_attempt_at=timezone.now() + next_in,
        error_class="unavailable",
        error_message=message,
    )


# --- /healthz -------------------------------------------------------------------------------------
def test_healthz_is_degraded_but_alive_while_a_connectors_circuit_is_open(client):
    netsuite_circuit_open()
    waiting_step("ORD-H1", attempts=2, next_in=timedelta(seconds=40))
    response = client.get("/healthz")
    assert response.status_code == 200  # liveness: the hub itself is fine
    body = response.json()
    assert body["status"] == "degraded"
    assert "NetSuite is not answering" in body["reason"]
    netsuite = body["connectors"]["systems"]["netsuite"]
    assert netsuite["status"] == "down" and netsuite["circuit"] == "open" and netsuite["down_since"]
    assert netsuite["waiting_steps"] == 1 and netsuite["next_attempt_at"]
    assert "temporarily unavailable" in netsuite["last_error"]


def test_down_since_is_when_the_failures_began_not_when_the_circuit_last_reopened(client):
    calls("netsuite", 3, ago=timedelta(minutes=20))  # last answered 20 minutes ago
    calls("netsuite", 5, error_class="unavailable", ago=timedelta(minutes=12))  # the outage began
    netsuite_circuit_open(since=timedelta(seconds=30))  # a probe just failed: the circuit opened again
    since = client.get("/healthz").json()["connectors"]["systems"]["netsuite"]["down_since"]
    began = ConnectorCall.objects.filter(system="netsuite", error_class="unavailable").order_by("at").first().at
    assert since == began.isoformat()


def test_healthz_is_degraded_when_a_connector_fails_many_calls_without_an_open_circuit(client):
    calls("stripe", 12)
    calls("stripe", 8, error_class="timeout")
    body = client.get("/healthz").json()
    assert body["status"] == "degraded" and body["connectors"]["systems"]["stripe"]["status"] == "degraded"
    assert "Stripe Billing failed 40% of 20 calls" in body["reason"]


def test_records_a_system_refuses_are_not_an_outage(client):
    calls("netsuite", 12)
    calls("netsuite", 8, error_class="validation")  # bad data, not a sick system
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["connectors"]["status"] == "ok"


def test_a_circuit_left_open_after_the_system_answered_again_is_not_down(client):
    netsuite_circuit_open(since=timedelta(minutes=10))
    calls("netsuite", 3, ago=timedelta(seconds=5))  # polling got through since
    assert client.get("/healthz").json()["connectors"]["systems"]["netsuite"]["status"] == "ok"


def test_the_failures_of_an_outage_that_ended_are_not_an_error_rate(client):
    from sync.engine import circuit

    netsuite_circuit_open()  # six 503s two minutes ago opened the circuit
    circuit.circuit_record_success("netsuite")  # a probe got through: closed
    calls("netsuite", 4, ago=timedelta(seconds=0))
    body = client.get("/healthz").json()
    assert ConnectorState.objects.get(system="netsuite").closed_at is not None
    assert body["status"] == "ok" and body["connectors"]["systems"]["netsuite"]["status"] == "ok"


# --- the banner -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/exceptions/", "/sla/", "/orders/"])
def test_every_page_carries_the_outage_banner_in_business_words_for_executives(client, executive, path):
    netsuite_circuit_open()
    waiting_step("ORD-B1", attempts=1, next_in=timedelta(seconds=30))
    client.force_login(executive)
    html = client.get(path).content.decode()
    banner = html.split('id="outage-banner"', 1)[1].split("</div>", 1)[0]
    assert "NetSuite (ERP) is not answering since" in banner
    assert "Sales orders, invoices and payments are not reaching the ERP" in banner
    assert "1 step waits and retries by itself" in banner and "Nothing is lost" in banner
    assert "circuit" not in banner and "Connectors →" not in banner  # no jargon, no link they could not open


def test_it_operations_get_the_technical_reason_and_a_link_to_the_connectors(client, itops):
    netsuite_circuit_open()
    client.force_login(itops)
    banner = client.get("/").content.decode().split('id="outage-banner"', 1)[1].split("</div>", 1)[0]
    assert "its circuit is open" in banner and "temporarily unavailable" in banner and 'href="/connectors/"' in banner


def test_the_banner_refreshes_itself_and_goes_once_the_system_is_back(client, finance):
    state = netsuite_circuit_open()
    client.force_login(finance)
    page = client.get("/invoices/").content.decode()
    assert 'hx-get="/live/banner/"' in page and 'hx-trigger="every 15s"' in page
    assert 'data-system="netsuite"' in client.get("/live/banner/", HTTP_HX_REQUEST="true").content.decode()
    ConnectorState.objects.filter(pk=state.pk).update(circuit="closed", opened_at=None, consecutive_failures=0)
    region = client.get("/live/banner/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="outage-banner"' in region and 'data-system="netsuite"' not in region


def test_the_banner_is_read_once_per_few_seconds_per_process(client, executive, settings):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.LIVE_BANNER_CACHE_SECONDS = 5
    cache.delete("live:outage-banner")
    netsuite_circuit_open()
    client.force_login(executive)
    client.get("/live/banner/")
    with CaptureQueriesContext(connection) as queries:
        assert 'data-system="netsuite"' in client.get("/live/banner/").content.decode()
    assert not [q["sql"] for q in queries if "connector" in q["sql"] or "flowstep" in q["sql"]]  # from the cache
    cache.delete("live:outage-banner")


# --- last success ------------------------------------------------------------------------------------------
def test_last_success_is_the_last_successful_call_not_the_last_flow_step(client, itops):
    ConnectorState.objects.create(system="salesforce", last_success_at=timezone.now() - timedelta(minutes=38))  # the last flow step
    calls("salesforce", 40, ago=timedelta(seconds=20))  # status write-backs and polling, all fine
    calls("salesforce", 1, error_class="timeout", ago=timedelta(seconds=5))
    client.force_login(itops)
    html = client.get("/connectors/").content.decode()
    tile = html.split('data-system="salesforce"', 1)[1].split('<div class="tile', 1)[0]
    assert "Last successful call" in tile
    assert "38m" not in tile and ("20s ago" in tile or "21s ago" in tile)


# --- waiting steps ----------------------------------------------------------------------------------------------
def test_the_queue_counts_steps_waiting_to_retry_with_next_attempt_and_attempts_left(client, itops):
    first = waiting_step("ORD-W1", attempts=2, next_in=timedelta(seconds=40))
    waiting_step("ORD-W2", attempts=5, next_in=timedelta(minutes=3))
    waiting_step("ORD-W3", attempts=1, next_in=timedelta(seconds=90), message="netsuite circuit open: waiting")
    client.force_login(itops)
    html = client.get("/exceptions/").content.decode()
    counts = html.split('id="counts"', 1)[1].split("</div>", 1)[0]
    assert 'data-waiting="3"' in counts and ">3</span> steps waiting to retry" in counts
    assert f"next {timezone.localtime(first.next_attempt_at):%H:%M:%S}" in counts
    waiting = html.split('id="waiting"', 1)[1].split("</details>", 1)[0]
    rows = waiting.split("<tr data-step=")[1:]
    assert [r.split("</td>", 2)[1] for r in rows][0].count("ORD-W1")  # soonest first
    assert "2 of 6" in rows[0] and "4 left" in rows[0]
    assert "5 of 6" in waiting and "1 left" in waiting
    assert "this wait spends no attempt" in rows[1]  # ORD-W3, paused by the open circuit


def test_the_counts_region_keeps_the_waiting_figure_when_it_refreshes(client, itops):
    waiting_step("ORD-W9", attempts=1, next_in=timedelta(seconds=10))
    client.force_login(itops)
    counts = client.get("/exceptions/", {"partial": "counts"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-waiting="1"' in counts and ">1</span> step waiting to retry" in counts


def test_the_connectors_page_lists_the_waiting_steps_and_when_each_tries_again(client, itops):
    step = waiting_step("ORD-C1", attempts=3, next_in=timedelta(seconds=45))
    client.force_login(itops)
    html = client.get("/connectors/").content.decode()
    tile = html.split('data-system="netsuite"', 1)[1].split('<div class="tile', 1)[0]
    assert f"next {timezone.localtime(step.next_attempt_at):%H:%M:%S}" in tile
    waiting = html.split('id="waiting"', 1)[1].split("</table>", 1)[0]
    assert "ORD-C1" in waiting and "3 of 6" in waiting and "(3 left)" in waiting


def test_a_trace_says_when_a_waiting_step_tries_again_and_how_many_attempts_it_has_left(client, itops):
    step = waiting_step("ORD-T1", attempts=4, next_in=timedelta(seconds=50))
    client.force_login(itops)
    html = client.get(f"/traces/{step.flow_run_id}/").content.decode()
    note = html.split('class="waiting-note"', 1)[1].split("</p>", 1)[0]
    assert f"Next attempt {timezone.localtime(step.next_attempt_at):%H:%M:%S}" in note
    assert "2 attempts left before it becomes an exception" in note and "4 of 6 attempts" in html
