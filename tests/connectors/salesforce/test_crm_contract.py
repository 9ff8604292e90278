"""The Salesforce connector against its sandbox, through the shared CRM contract."""

from tests.connectors.contract_crm import CRMContract


class TestSalesforceMeetsTheCRMContract(CRMContract):
    system = "salesforce"
