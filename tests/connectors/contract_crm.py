"""The CRM contract: what every CRM connector must do, whatever the CRM.

One `CRMCase` per CRM connector says how to make things happen in its sandbox (close a deal,
push its pending webhooks) and how to read a record back. A connector's test module runs
the whole contract with two lines:

    class TestSalesforceMeetsTheCRMContract(CRMContract):
        system = "salesforce"

so HubSpot or Dynamics is tested by adding one entry to CRM_CASES (and those two lines).
The tests use only the CRMConnector interface, the shared sandbox kit's fault controls and
the canonical schemas.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sync.canonical.events import validate_envelope
from sync.connectors.errors import ConnectorError
from sync.connectors.registry import connector_class
from sync.connectors.roles import CRMConnector


@dataclass(frozen=True)
class CRMCase:
    system: str
    order_object_type: str  # what fetch_changes polls for won orders
    close_deal: Callable[[], dict]  # → {"order_id", "order_number", "account_id"} (a deal won in the sandbox)
    push_events: Callable[[str], int]  # deliver the sandbox's pending webhooks to this URL
    read_order: Callable[[CRMConnector, str], dict]  # the order record's fields, read through the connector
    status_fields: dict = field(default_factory=dict)  # a status write-back the CRM accepts
    missing_order_id: str = ""  # well-formed, but no such record


def _salesforce_close_deal() -> dict:
    from sandboxes.salesforce.simulate import close_won_deal

    return close_won_deal(account_name="Contract Testing Ltd", lines=[{"sku": "PLAT-PRO", "quantity": 12, "unit_price": "79.00"}], currency="GBP")


def _salesforce_push(url: str) -> int:
    from sandboxes.salesforce.simulate import relay_pending_events

    total = 0
    while sent := relay_pending_events(url=url):
        total += sent
    return total


def _salesforce_read(connector, order_id: str) -> dict:
    return next(iter(connector.query(f"SELECT Id, Status, Q2C_Status__c, ERP_Order_Id__c, Billing_Subscription_Id__c FROM Order WHERE Id = '{order_id}'")))


CRM_CASES: list[CRMCase] = [
    CRMCase(
        system="salesforce",
        order_object_type="Order",
        close_deal=_salesforce_close_deal,
        push_events=_salesforce_push,
        read_order=_salesforce_read,
        status_fields={"Status": "Activated", "Q2C_Status__c": "Activated", "ERP_Order_Id__c": "SO-4242", "Billing_Subscription_Id__c": "sub_4242"},
        missing_order_id="8015g000000ZZZZAAA",
    ),
]


def case_for(system: str) -> CRMCase:
    return next(case for case in CRM_CASES if case.system == system)


class _Hub:
    """A local stand-in for the hub's webhook URL: keeps each delivery's raw body and headers."""

    def __init__(self):
        self.deliveries: list[tuple[bytes, dict]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.deliveries.append((body, dict(self.headers.items())))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/webhooks/crm/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@dataclass
class CRMUnderTest:
    case: CRMCase
    connector: CRMConnector
    server: object  # tests/conftest.py SandboxServer
    hub: _Hub

    def inbound(self) -> list[dict]:
        """Push pending webhooks, verify each delivery, normalise every raw event."""
        start = len(self.hub.deliveries)
        self.case.push_events(self.hub.url)
        raw = [event for body, headers in self.hub.deliveries[start:] for event in self.connector.verify_webhook(body, headers)]
        return raw


@pytest.mark.django_db(transaction=True)
class CRMContract:
    system: str = ""

    @pytest.fixture
    def crm(self, sandbox_servers, point_connector) -> CRMUnderTest:
        case = case_for(self.system)
        server = sandbox_servers(case.system)
        server.faults()
        point_connector(case.system, server)
        hub = _Hub()
        yield CRMUnderTest(case=case, connector=connector_class(case.system).from_settings(), server=server, hub=hub)
        hub.close()
        server.faults()

    @staticmethod
    def canonical(crm: CRMUnderTest, raw_events: list[dict]) -> list[dict]:
        return [envelope for raw in raw_events for envelope in crm.connector.normalize(raw)]

    def test_it_is_registered_as_a_crm_connector(self, crm):
        cls = connector_class(crm.case.system)

        assert issubclass(cls, CRMConnector) and cls.system == crm.case.system and cls.role == "crm"

    def test_health_is_an_authenticated_call_that_succeeds(self, crm):
        assert isinstance(crm.connector.health(), dict)

    def test_raw_events_have_the_hub_shape(self, crm):
        crm.case.close_deal()

        raw = crm.inbound()

        assert raw
        for event in raw:
            assert set(event) == {"id", "type", "occurred_at", "payload"}
            assert isinstance(event["id"], str) and event["id"] and isinstance(event["payload"], dict)
            assert datetime.fromisoformat(event["occurred_at"]).tzinfo is not None
        assert len({e["id"] for e in raw}) == len(raw)

    def test_a_won_deal_becomes_exactly_one_valid_order_closed_won(self, crm):
        deal = crm.case.close_deal()

        envelopes = self.canonical(crm, crm.inbound())

        problems = [p for e in envelopes for p in validate_envelope(e)]
        assert problems == []
        won = {e["id"]: e for e in envelopes if e["type"] == "order.closed_won.v1"}
        assert len(won) == 1
        data = next(iter(won.values()))["data"]
        assert data["crm_record_id"] == deal["order_id"] and data["order_number"] == deal["order_number"]
        assert data["account"]["external_id"] == deal["account_id"] and data["lines"]
        assert all(e["source"] == crm.case.system for e in envelopes)

    def test_normalize_is_deterministic_so_redelivery_is_deduplicated(self, crm):
        crm.case.close_deal()
        raw = crm.inbound()

        assert self.canonical(crm, raw) == self.canonical(crm, raw)

    def test_status_write_back_is_idempotent_and_its_echo_is_ignored(self, crm):
        deal = crm.case.close_deal()
        crm.inbound()

        first = crm.connector.set_status(
            object_type=crm.case.order_object_type, external_id=deal["order_id"], fields=crm.case.status_fields, idempotency_key=f"status-{deal['order_id']}"
        )
        second = crm.connector.set_status(
            object_type=crm.case.order_object_type, external_id=deal["order_id"], fields=crm.case.status_fields, idempotency_key=f"status-{deal['order_id']}"
        )
        echo = self.canonical(crm, crm.inbound())

        assert first.external_id == second.external_id
        record = crm.case.read_order(crm.connector, deal["order_id"])
        assert all(record[k] == v for k, v in crm.case.status_fields.items())
        assert echo == []

    def test_a_bad_signature_is_an_auth_error_and_a_bad_body_a_validation_error(self, crm):
        crm.case.close_deal()
        crm.case.push_events(crm.hub.url)
        body, headers = crm.hub.deliveries[0]

        with pytest.raises(ConnectorError) as forged:
            crm.connector.verify_webhook(body + b" ", headers)
        with pytest.raises(ConnectorError) as unsigned:
            crm.connector.verify_webhook(body, {})

        assert forged.value.error_class == "auth" and unsigned.value.error_class == "auth"

    def test_writing_to_a_missing_record_is_not_found(self, crm):
        with pytest.raises(ConnectorError) as caught:
            crm.connector.set_status(
                object_type=crm.case.order_object_type, external_id=crm.case.missing_order_id, fields=crm.case.status_fields, idempotency_key="missing"
            )

        assert caught.value.error_class == "not_found" and not caught.value.transient

    def test_an_outage_is_a_transient_error(self, crm):
        crm.server.faults(outage=True)

        with pytest.raises(ConnectorError) as caught:
            crm.connector.health()

        assert caught.value.transient

    def test_polling_finds_the_same_order_as_the_webhook(self, crm):
        since = datetime.now(UTC) - timedelta(seconds=2)
        deal = crm.case.close_deal()
        pushed = {e["id"] for e in self.canonical(crm, crm.inbound()) if e["type"] == "order.closed_won.v1"}

        polled = {
            e["id"]: e
            for e in self.canonical(crm, list(crm.connector.fetch_changes(object_type=crm.case.order_object_type, since=since)))
            if e["type"] == "order.closed_won.v1"
        }

        assert set(polled) == pushed and len(polled) == 1
        assert next(iter(polled.values()))["data"]["crm_record_id"] == deal["order_id"]
