"""The sandbox tenant's setup: one company (BUSINESS_CENTRAL_COMPANY_ID), its currencies, its items.

`seed()` is idempotent; the views call `ensure_seeded()` on every request, so a new or emptied
database (tests truncate tables) gets its setup on the next request. Items carry the SKU as their number — how the connector finds an item for a SKU — the
same catalogue as the NetSuite sandbox. The company's local currency is USD; EUR, GBP and CAD
are set up as currencies.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sandboxes.db import DB, connection

from . import ledger, specs
from .models import Company, Entity

COMPANY_NAME = "Q2C US"
CURRENCIES = [("EUR", "Euro", "€"), ("GBP", "British Pound", "£"), ("CAD", "Canadian Dollar", "$")]
# (number = SKU, display name, unit price, type)
ITEMS = [
    ("PLAT-SEAT", "Platform seat (monthly)", Decimal("45.00"), "Service"),
    ("PLAT-API", "Platform API access", Decimal("500.00"), "Service"),
    ("SUPPORT-PREM", "Premium support", Decimal("900.00"), "Service"),
    ("ONBOARD-FEE", "Onboarding fee (one-time)", Decimal("2500.00"), "Service"),
    ("USAGE-API-CALLS", "API calls (per 1,000)", Decimal("0.0125"), "Service"),
    ("PLAT-STD", "Platform Standard (per seat)", Decimal("39.00"), "Service"),
    ("PLAT-PRO", "Platform Professional (per seat)", Decimal("79.00"), "Service"),
    ("PLAT-ENT", "Platform Enterprise (annual)", Decimal("24000.00"), "Service"),
    ("SUP-PREM", "Premium Support (annual)", Decimal("4800.00"), "Service"),
    ("ONB-PRO", "Onboarding Package", Decimal("2500.00"), "Service"),
    ("API-CALLS", "API Calls (per 1k)", Decimal("0.50"), "Service"),
    ("ADJUSTMENT", "Billing adjustment / credit", Decimal("0.00"), "Non-Inventory"),
    ("SALES-TAX", "Sales tax calculated by billing", Decimal("0.00"), "Non-Inventory"),
]


def company_id() -> str:
    return str(settings.CONNECTORS["business_central"]["company_id"]).lower()


def seed() -> dict:
    """Create what is missing; returns counts of what exists afterwards."""
    now = timezone.now()
    with transaction.atomic(using=DB):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('business-central-sandbox-seed'))")
        company, _ = Company.objects.get_or_create(id=company_id(), defaults={"name": COMPANY_NAME, "display_name": "Q2C US Inc.", "lcy_code": "USD"})
        existing = set(Entity.objects.filter(company=company).values_list("entity_set", "data__number"))
        existing |= set(Entity.objects.filter(company=company, entity_set="currencies").values_list("entity_set", "data__code"))

        def add(entity_set: str, data: dict, key: str) -> None:
            if (entity_set, key) in existing:
                return
            entity = Entity(company=company, entity_set=entity_set, data=data, created_at=now, last_modified=now)
            ledger.touch(entity, now)
            entity.save()

        add(
            "companyInformation",
            {
                "number": "INFO",
                "displayName": company.display_name,
                "addressLine1": "1 Market Street",
                "city": "San Francisco",
                "country": "US",
                "currencyCode": company.lcy_code,
                "currentFiscalYearStartDate": f"{now.year}-01-01",
            },
            "INFO",
        )
        for code, name, symbol in CURRENCIES:
            add(
                "currencies",
                {"code": code, "displayName": name, "symbol": symbol, "amountDecimalPlaces": "2:2", "amountRoundingPrecision": Decimal("0.01")},
                code,
            )
        for number, name, price, kind in ITEMS:
            add(
                "items",
                {
                    "number": number,
                    "displayName": name,
                    "type": kind,
                    "itemCategoryCode": "",
                    "blocked": False,
                    "unitPrice": price,
                    "priceIncludesTax": False,
                    "taxGroupCode": "",
                    "baseUnitOfMeasureCode": "PCS" if kind != "Service" else "HOUR",
                },
                number,
            )
        if not Entity.objects.filter(company=company, entity_set=specs.JOURNALS.name, data__code="CASHRCPT").exists():
            add(specs.JOURNALS.name, {"code": "CASHRCPT", "displayName": "Cash receipts", "balancingAccountNumber": ledger.BANK_ACCOUNT}, "CASHRCPT")
    return {
        "companies": Company.objects.count(),
        "items": Entity.objects.filter(company=company, entity_set="items").count(),
        "currencies": Entity.objects.filter(company=company, entity_set="currencies").count(),
    }


def ensure_seeded() -> None:
    """Seed if the tenant has no company (one cheap query per request otherwise)."""
    if not Company.objects.filter(id=company_id()).exists():
        seed()
