"""The ERP contract: what every ERP connector must do, whatever the ERP.

One `ERPCase` per ERP connector says how to reach its sandbox and what its catalogue holds.
A connector's test module runs the whole contract with two lines:

    class TestNetSuiteMeetsTheERPContract(ERPContract):
        system = "netsuite"

so SAP or Dynamics is tested by adding one entry to ERP_CASES (and those two lines). The
tests use only the ERPConnector interface and the shared sandbox kit's fault controls.

Where ERPs differ in what they *keep*, the case says so and the test checks that ERP's version
exactly: the key an ERP stores for a hub external id (NetSuite: the external id itself; Business
Central: a customer number derived from it, as its Code[20] field holds it) and whether a closed
sales order stays readable (NetSuite closes its lines; Business Central has no closed orders and
deletes one that is not to be fulfilled).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from sync.connectors.business_central import mapper as bc_mapper
from sync.connectors.errors import ConnectorError
from sync.connectors.registry import connector_class
from sync.models import ErrorClass


@dataclass(frozen=True)
class ERPCase:
    system: str
    skus: tuple[str, str]  # two SKUs its sandbox catalogue knows
    subsidiary_id: str  # an ERP subsidiary / company code its sandbox knows
    currency: str  # that subsidiary's currency
    customer_query: Callable[[str], str]  # a `query()` text finding a customer by external id
    query_external_id_field: str  # the row key holding the external id in that query's rows
    stored_external_id: Callable[[str], str] = str  # what that row key holds for an external id
    keeps_closed_orders: bool = True  # a closed sales order is still read back, with status "closed"


ERP_CASES: list[ERPCase] = [
    ERPCase(
        system="netsuite",
        skus=("PLAT-SEAT", "SUPPORT-PREM"),
        subsidiary_id="1",
        currency="USD",
        customer_query=lambda eid: f"SELECT id, externalid FROM customer WHERE externalid = '{eid}'",
        query_external_id_field="externalid",
    ),
    ERPCase(
        system="business_central",
        skus=("PLAT-SEAT", "SUPPORT-PREM"),
        subsidiary_id="5b2a1c9e-7d3f-4e8a-9c61-0b4d2f7a8e13",  # the sandbox's company (BUSINESS_CENTRAL_COMPANY_ID)
        currency="USD",
        customer_query=lambda eid: f"customers?$filter=number eq '{bc_mapper.customer_number(eid)}'&$select=id,number",
        query_external_id_field="number",
        stored_external_id=bc_mapper.customer_number,
        keeps_closed_orders=False,
    ),
]


def case_for(system: str) -> ERPCase:
    return next(case for case in ERP_CASES if case.system == system)


@dataclass
class ERPUnderTest:
    case: ERPCase
    connector: object
    server: object  # tests/conftest.py SandboxServer (faults via the shared kit)


def _key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.mark.django_db(transaction=True)
class ERPContract:
    system: str = ""

    @pytest.fixture
    def erp(self, sandbox_servers, point_connector) -> ERPUnderTest:
        case = case_for(self.system)
        server = sandbox_servers(case.system)
        server.faults()
        point_connector(case.system, server)
        yield ERPUnderTest(case=case, connector=connector_class(case.system).from_settings(), server=server)
        server.faults()

    # --- builders ---------------------------------------------------------------------------
    @staticmethod
    def customer(erp: ERPUnderTest) -> dict:
        return {
            "account": {"external_id": _key("ACC"), "name": "Initech GmbH", "email": "ap@initech.example"},
            "currency": erp.case.currency,
            "erp_subsidiary_id": erp.case.subsidiary_id,
        }

    @staticmethod
    def order(erp: ERPUnderTest, *, seats: str = "10", price: str = "45.00") -> dict:
        sku_a, sku_b = erp.case.skus
        return {
            "order_number": _key("ORD"),
            "account": {"external_id": _key("ACC"), "name": "Initech GmbH"},
            "currency": erp.case.currency,
            "closed_won_at": "2026-03-02T15:30:00Z",
            "effective_date": "2026-03-02",
            "erp_subsidiary_id": erp.case.subsidiary_id,
            "lines": [
                {"sku": sku_a, "quantity": seats, "unit_price": price, "description": "Seats"},
                {"sku": sku_b, "quantity": "1", "unit_price": "1200.00", "description": "Support"},
            ],
        }

    def customer_id(self, erp: ERPUnderTest) -> str:
        return erp.connector.upsert_customer(customer=self.customer(erp), external_id=_key("CUS")).external_id

    # --- the contract ---------------------------------------------------------------------
    def test_customer_upsert_twice_returns_the_same_record(self, erp):
        customer, external_id = self.customer(erp), _key("CUS")
        first = erp.connector.upsert_customer(customer=customer, external_id=external_id)
        second = erp.connector.upsert_customer(customer={**customer, "account": {**customer["account"], "name": "Initech AG"}}, external_id=external_id)
        assert first.external_id and first.external_id == second.external_id

    def test_sales_order_upsert_twice_keeps_one_order_with_the_second_version(self, erp):
        customer_id, external_id = self.customer_id(erp), _key("SO")
        first = erp.connector.upsert_sales_order(order=self.order(erp, seats="10"), customer_id=customer_id, external_id=external_id)
        second = erp.connector.upsert_sales_order(order=self.order(erp, seats="12"), customer_id=customer_id, external_id=external_id)
        assert first.external_id == second.external_id
        order = erp.connector.get_sales_order(external_id=external_id)
        assert Decimal(order["total"]) == Decimal(12) * Decimal("45.00") + Decimal("1200.00")

    def test_get_sales_order_returns_id_status_total_and_currency(self, erp):
        customer_id, external_id = self.customer_id(erp), _key("SO")
        result = erp.connector.upsert_sales_order(order=self.order(erp, seats="3", price="99.99"), customer_id=customer_id, external_id=external_id)
        order = erp.connector.get_sales_order(external_id=external_id)
        assert order["id"] == result.external_id
        assert order["external_id"] == external_id
        assert order["status"] == "open"
        assert order["currency"] == erp.case.currency
        assert Decimal(order["total"]) == Decimal(3) * Decimal("99.99") + Decimal("1200.00")

    def test_an_unknown_sales_order_is_none(self, erp):
        assert erp.connector.get_sales_order(external_id=_key("NOPE")) is None

    def test_an_unknown_sku_is_a_mapping_error_naming_it(self, erp):
        order = self.order(erp)
        order["lines"][1]["sku"] = "NO-SUCH-SKU-42"
        external_id = _key("SO")
        with pytest.raises(ConnectorError) as caught:
            erp.connector.upsert_sales_order(order=order, customer_id=self.customer_id(erp), external_id=external_id)
        assert caught.value.error_class == ErrorClass.MAPPING
        assert "NO-SUCH-SKU-42" in caught.value.message
        assert caught.value.field == "lines[1].sku"
        assert erp.connector.get_sales_order(external_id=external_id) is None

    def test_closing_a_sales_order_shows_it_closed(self, erp):
        external_id = _key("SO")
        result = erp.connector.upsert_sales_order(order=self.order(erp), customer_id=self.customer_id(erp), external_id=external_id)
        erp.connector.close_sales_order(sales_order_id=result.external_id, external_id=external_id)
        erp.connector.close_sales_order(sales_order_id=result.external_id, external_id=external_id)  # again: no error
        if erp.case.keeps_closed_orders:
            assert erp.connector.get_sales_order(external_id=external_id)["status"] == "closed"
        else:
            assert erp.connector.get_sales_order(external_id=external_id) is None

    def test_an_order_change_recorded_twice_is_one_record(self, erp):
        customer_id = self.customer_id(erp)
        original = erp.connector.upsert_sales_order(order=self.order(erp), customer_id=customer_id, external_id=_key("SO"))
        change = {
            "amendment_id": _key("AMD"),
            "order_number": "ORD-1",
            "currency": erp.case.currency,
            "requested_at": "2026-04-01T09:00:00Z",
            "effective_date": "2026-04-01",
            "arr_delta": "1080.00",
            "changes": [{"sku": erp.case.skus[0], "quantity": "2", "unit_price": "45.00"}],
        }
        external_id = _key("CHG")
        first = erp.connector.record_order_change(change=change, sales_order_id=original.external_id, customer_id=customer_id, external_id=external_id)
        second = erp.connector.record_order_change(change=change, sales_order_id=original.external_id, customer_id=customer_id, external_id=external_id)
        assert first.external_id == second.external_id != original.external_id

    def test_invoice_payment_and_credit_memo_upserts_are_idempotent(self, erp):
        customer_id = self.customer_id(erp)
        sku = erp.case.skus[0]
        invoice = {
            "invoice_number": _key("INV"),
            "currency": erp.case.currency,
            "total": "450.00",
            "finalized_at": "2026-03-03T00:00:00Z",
            "erp_subsidiary_id": erp.case.subsidiary_id,
            "lines": [{"sku": sku, "description": "Seats", "quantity": "10", "unit_amount": "45.00", "amount": "450.00"}],
        }
        inv_eid = _key("INV")
        inv = [erp.connector.upsert_invoice(invoice=invoice, customer_id=customer_id, external_id=inv_eid) for _ in range(2)]
        assert inv[0].external_id == inv[1].external_id
        payment = {
            "payment_id": _key("PAY"),
            "invoice_number": invoice["invoice_number"],
            "amount": "450.00",
            "currency": erp.case.currency,
            "received_at": "2026-03-05T12:00:00Z",
        }
        pay_eid = _key("PAY")
        pays = [erp.connector.upsert_payment(payment=payment, customer_id=customer_id, invoice_id=inv[0].external_id, external_id=pay_eid) for _ in range(2)]
        assert pays[0].external_id == pays[1].external_id
        memo = {
            "credit_memo_number": _key("CM"),
            "amount": "45.00",
            "currency": erp.case.currency,
            "issued_at": "2026-03-06T00:00:00Z",
            "reason": "One seat credited",
            "erp_subsidiary_id": erp.case.subsidiary_id,
        }
        cm_eid = _key("CM")
        memos = [erp.connector.upsert_credit_memo(credit_memo=memo, customer_id=customer_id, external_id=cm_eid) for _ in range(2)]
        assert memos[0].external_id == memos[1].external_id

    def test_query_finds_a_customer_by_external_id(self, erp):
        external_id = _key("CUS")
        result = erp.connector.upsert_customer(customer=self.customer(erp), external_id=external_id)
        rows = list(erp.connector.query(q=erp.case.customer_query(external_id)))
        assert [str(r["id"]) for r in rows] == [result.external_id]
        assert rows[0][erp.case.query_external_id_field] == erp.case.stored_external_id(external_id)

    def test_an_outage_is_a_transient_unavailable_error(self, erp):
        erp.server.faults(outage=True)
        with pytest.raises(ConnectorError) as caught:
            erp.connector.upsert_customer(customer=self.customer(erp), external_id=_key("CUS"))
        assert caught.value.error_class == ErrorClass.UNAVAILABLE
        assert caught.value.transient

    def test_a_short_rate_limit_is_waited_out(self, erp):
        customer_id = self.customer_id(erp)
        erp.server.faults(rate_limit_retry_after=1, rate_limit_requests=1)
        external_id = _key("SO")
        result = erp.connector.upsert_sales_order(order=self.order(erp), customer_id=customer_id, external_id=external_id)
        assert erp.connector.get_sales_order(external_id=external_id)["id"] == result.external_id

    def test_a_long_rate_limit_is_a_rate_limit_error_with_retry_after(self, erp):
        erp.server.faults(rate_limit_retry_after=120, rate_limit_requests=-1)
        with pytest.raises(ConnectorError) as caught:
            erp.connector.upsert_customer(customer=self.customer(erp), external_id=_key("CUS"))
        assert caught.value.error_class == ErrorClass.RATE_LIMIT
        assert caught.value.retry_after == 120
