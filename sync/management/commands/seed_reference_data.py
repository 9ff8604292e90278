"""Legal entities (ERP subsidiaries) and currency rates the flows need. Idempotent."""

from datetime import date
from decimal import Decimal

from django.core.management.base import BaseCommand

from sync.models import CurrencyRate, LegalEntity

ENTITIES = [
    ("US01", "Acme Cloud Inc.", "USD", "1"),
    ("UK01", "Acme Cloud Ltd.", "GBP", "2"),
    ("DE01", "Acme Cloud GmbH", "EUR", "3"),
]
# units of USD (the default reporting currency) per unit; adjust in the admin
RATES = {"GBP": Decimal("1.27"), "EUR": Decimal("1.08"), "CAD": Decimal("0.73"), "JPY": Decimal("0.0067")}


class Command(BaseCommand):
    help = "Create the demo legal entities (NetSuite subsidiaries 1-3) and currency rates."

    def handle(self, *args, **options):
        for code, name, currency, subsidiary in ENTITIES:
            LegalEntity.objects.update_or_create(code=code, defaults={"name": name, "base_currency": currency, "erp_subsidiary_id": subsidiary})
        for currency, rate in RATES.items():
            CurrencyRate.objects.get_or_create(currency=currency, valid_from=date(2026, 1, 1), defaults={"rate_to_reporting": rate})
        self.stdout.write(f"{len(ENTITIES)} legal entities, {len(RATES)} currency rates")
