"""State of the NetSuite sandbox, in PostgreSQL.

Every record the REST Record Service serves (customer, salesOrder, invoice, customerPayment,
creditMemo, inventoryItem, nonInventorySaleItem) is one `Record` row: its internal id is the
row id, its fields the JSON body NetSuite would hold (references as {"id": "…"}, amounts as
exact decimals). Subsidiaries and currencies are small lists with fixed ids, as in an
account's setup. `ExternalIdLedger` counts creates and updates per external id so a test can
assert that retries left exactly one sales order.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sync.connectors.netsuite.wire import ExactDecoder, ExactEncoder


class Currency(models.Model):
    id = models.PositiveIntegerField(primary_key=True)
    symbol = models.CharField(max_length=3, unique=True)  # ISO 4217
    name = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.symbol


class Subsidiary(models.Model):
    id = models.PositiveIntegerField(primary_key=True)
    name = models.CharField(max_length=128)
    country = models.CharField(max_length=2)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT)

    class Meta:
        verbose_name_plural = "subsidiaries"

    def __str__(self) -> str:
        return self.name


class Record(models.Model):
    id = models.BigAutoField(primary_key=True)  # NetSuite's internal id
    record_type = models.CharField(max_length=32)  # REST record type: "salesOrder", …
    external_id = models.CharField(max_length=255, null=True, blank=True)
    data = models.JSONField(default=dict, encoder=ExactEncoder, decoder=ExactDecoder)
    created_at = models.DateTimeField()
    last_modified = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["record_type", "last_modified"])]
        constraints = [
            models.UniqueConstraint(fields=["record_type", "external_id"], condition=Q(external_id__isnull=False), name="uniq_netsuite_sandbox_eid"),
        ]

    def __str__(self) -> str:
        return f"{self.record_type} {self.id}"


class ExternalIdLedger(models.Model):
    """How many times a record with this external id was created and updated."""

    record_type = models.CharField(max_length=32)
    external_id = models.CharField(max_length=255)
    creates = models.PositiveIntegerField(default=0)
    updates = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record_type", "external_id"], name="uniq_netsuite_sandbox_ledger")]


class OAuthNonce(models.Model):
    """Nonces seen inside the timestamp window: a replayed request is refused."""

    consumer_key = models.CharField(max_length=255)
    token = models.CharField(max_length=255)
    nonce = models.CharField(max_length=255)
    timestamp = models.BigIntegerField()
    seen_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["consumer_key", "token", "nonce", "timestamp"], name="uniq_netsuite_sandbox_nonce")]
