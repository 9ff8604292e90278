"""The sandbox account's setup: currencies, subsidiaries and the item catalogue.

`seed_catalog()` is idempotent (safe to call on every start); the data migration calls it,
and the sandbox views call `ensure_seeded()` so an emptied database (tests truncate tables)
gets its catalogue back on the next request. Items carry the SKU as `itemId`, which is how
the connector resolves a canonical SKU to NetSuite's internal id.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from sandboxes.db import DB, connection

from . import models

CURRENCIES = [(1, "USD", "US Dollar"), (2, "GBP", "British pound"), (3, "CAD", "Canadian Dollar"), (4, "EUR", "Euro")]
SUBSIDIARIES = [(1, "Q2C US Inc.", "US", "USD"), (2, "Q2C UK Ltd", "GB", "GBP"), (3, "Q2C DE GmbH", "DE", "EUR")]
# (SKU = itemId, display name, base price, charge type, billing interval); SaaS sells non-inventory
# items. How an item bills is a custom item field (custitem_q2c_charge_type: recurring, one_time,
# usage; custitem_q2c_billing_interval: month, year) — [U] NetSuite has no native recurring flag
# without SuiteBilling, so accounts add one; the hub checks order lines against it.
ITEMS = [
    ("PLAT-SEAT", "Platform seat (monthly)", Decimal("45.00"), "recurring", "month"),
    ("PLAT-API", "Platform API access", Decimal("500.00"), "recurring", "month"),
    ("SUPPORT-PREM", "Premium support", Decimal("900.00"), "recurring", "month"),
    ("ONBOARD-FEE", "Onboarding fee (one-time)", Decimal("2500.00"), "one_time", ""),
    ("USAGE-API-CALLS", "API calls (per 1,000)", Decimal("0.0125"), "usage", "month"),
    ("PLAT-STD", "Platform Standard (per seat)", Decimal("39.00"), "recurring", "month"),
    ("PLAT-PRO", "Platform Professional (per seat)", Decimal("79.00"), "recurring", "month"),
    ("PLAT-ENT", "Platform Enterprise (annual)", Decimal("24000.00"), "recurring", "year"),
    ("SUP-PREM", "Premium Support (annual)", Decimal("4800.00"), "recurring", "year"),
    ("ONB-PRO", "Onboarding Package", Decimal("2500.00"), "one_time", ""),
    ("API-CALLS", "API Calls (per 1k)", Decimal("0.50"), "usage", "month"),
    ("ADJUSTMENT", "Billing adjustment / credit", Decimal("0.00"), "", ""),
    ("SALES-TAX", "Sales tax calculated by billing", Decimal("0.00"), "", ""),
]
ITEM_RECORD_TYPE = "nonInventorySaleItem"


def seed_catalog(apps=None) -> dict:
    """Create what is missing; returns counts of what exists afterwards.

    `apps` is the migration state when called from a data migration (historical models).
    """
    if apps is None:
        Currency, Record, Subsidiary = models.Currency, models.Record, models.Subsidiary
    else:
        Currency, Record, Subsidiary = (apps.get_model("netsuite_sandbox", n) for n in ("Currency", "Record", "Subsidiary"))

    now = timezone.now()
    with transaction.atomic(using=DB):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('netsuite-sandbox-seed'))")
        for pk, symbol, name in CURRENCIES:
            Currency.objects.get_or_create(id=pk, defaults={"symbol": symbol, "name": name})
        for pk, name, country, currency in SUBSIDIARIES:
            Subsidiary.objects.get_or_create(id=pk, defaults={"name": name, "country": country, "currency": Currency.objects.get(symbol=currency)})
        existing = {r.data.get("itemId"): r for r in Record.objects.filter(record_type__in=("inventoryItem", "nonInventorySaleItem"))}
        for sku, display, price, charge, interval in ITEMS:
            billing = {"custitem_q2c_charge_type": charge, "custitem_q2c_billing_interval": interval} if charge else {}
            if sku not in existing:
                Record.objects.create(
                    record_type=ITEM_RECORD_TYPE,
                    external_id=f"ITEM-{sku}",
                    created_at=now,
                    last_modified=now,
                    data={"itemId": sku, "displayName": display, "salesDescription": display, "basePrice": price, "isInactive": False, **billing},
                )
            elif billing and "custitem_q2c_charge_type" not in existing[sku].data:  # an account seeded before items said how they bill
                record = existing[sku]
                record.data = {**record.data, **billing}
                record.save(update_fields=["data"])
    return {
        "currencies": Currency.objects.count(),
        "subsidiaries": Subsidiary.objects.count(),
        "items": Record.objects.filter(record_type__in=("inventoryItem", "nonInventorySaleItem")).count(),
    }


def ensure_seeded() -> None:
    """Seed if the account has no setup (one cheap query per request otherwise)."""
    if not models.Subsidiary.objects.exists():
        seed_catalog()
