"""The NetSuite connector against its sandbox, through the shared ERP contract."""

from tests.connectors.contract_erp import ERPContract


class TestNetSuiteMeetsTheERPContract(ERPContract):
    system = "netsuite"
