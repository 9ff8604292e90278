"""Currency of Salesforce records: CurrencyIsoCode in multi-currency orgs; in single-currency
orgs (no such field) the org's corporate currency, as configured — never a silent USD."""

from sync.connectors.salesforce import mapper


def test_a_multi_currency_record_carries_its_own_currency(settings):
    assert mapper.record_currency({"CurrencyIsoCode": "eur"}) == "EUR"


def test_a_single_currency_org_uses_the_configured_corporate_currency(settings):
    settings.CONNECTORS = {**settings.CONNECTORS, "salesforce": {**settings.CONNECTORS["salesforce"], "corporate_currency": "GBP"}}
    assert mapper.record_currency({"Id": "801xx"}) == "GBP"
    assert mapper.customer_upserted({"Id": "001A", "Name": "Globex Ltd"})["currency"] == "GBP"
