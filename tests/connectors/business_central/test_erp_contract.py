"""The Business Central connector against its sandbox, through the shared ERP contract."""

from tests.connectors.contract_erp import ERPContract


class TestBusinessCentralMeetsTheERPContract(ERPContract):
    system = "business_central"
