"""State of the Salesforce sandbox org, in PostgreSQL (its own tables)."""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models

from sandboxes.db import connection


class SRecord(models.Model):
    """One sObject record: 18-char Id with the object's key prefix, fields as JSON."""

    id = models.CharField(primary_key=True, max_length=18)
    sobject = models.CharField(max_length=64, db_index=True)
    fields = models.JSONField(default=dict)
    is_deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    modstamp = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["sobject", "modstamp"], name="sf_sandbox_obj_modstamp"),
            GinIndex(fields=["fields"], name="sf_sandbox_fields_gin"),  # fields @> {"OrderId": …}
        ]

    def __str__(self) -> str:
        return f"{self.sobject} {self.id}"


class Counter(models.Model):
    """Named sequences: record Ids per key prefix, auto-numbers (OrderNumber, ContractNumber)."""

    name = models.CharField(primary_key=True, max_length=64)
    value = models.BigIntegerField(default=0)

    @classmethod
    def next(cls, name: str, start: int = 1) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {cls._meta.db_table} (name, value) VALUES (%s, %s) "
                f"ON CONFLICT (name) DO UPDATE SET value = {cls._meta.db_table}.value + 1 RETURNING value",
                [name, start],
            )
            return cursor.fetchone()[0]


class ChangeEvent(models.Model):
    """A Change Data Capture message (CometD shape) and its relay bookkeeping.

    replay_id is the event's ReplayId. The relay (simulate.relay_pending_events) posts pending
    messages to the hub the way a Flow/Apex callout or a CometD bridge would.
    """

    PENDING, DELIVERED = "pending", "delivered"

    replay_id = models.BigAutoField(primary_key=True)
    entity_name = models.CharField(max_length=64)
    change_type = models.CharField(max_length=16)
    record_ids = models.JSONField(default=list)
    message = models.JSONField()
    status = models.CharField(max_length=16, default=PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="sf_sandbox_event_due")]


class ConnectedApp(models.Model):
    """A connected app: consumer key/secret, and the certificate for the JWT bearer flow."""

    consumer_key = models.CharField(max_length=255, unique=True)
    consumer_secret = models.CharField(max_length=255, blank=True)
    certificate_pem = models.TextField(blank=True, help_text="public key / certificate (PEM) for JWT bearer")
    run_as_user_id = models.CharField(max_length=18)


class AccessToken(models.Model):
    token = models.CharField(max_length=128, unique=True)
    consumer_key = models.CharField(max_length=255)
    user_id = models.CharField(max_length=18)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()


class QueryCursor(models.Model):
    """A query locator: the matching Ids in order, read a page at a time."""

    locator = models.CharField(primary_key=True, max_length=18)
    sobject = models.CharField(max_length=64)
    soql = models.TextField()
    record_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)


class OrgState(models.Model):
    """Org-wide settings and counters: the daily API request limit, sandbox-only knobs."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    api_requests_used = models.PositiveIntegerField(default=0)
    api_requests_limit = models.PositiveIntegerField(default=100000)
    query_batch_size = models.PositiveIntegerField(default=2000, help_text="[sandbox] default page size of query results")
    unavailable_requests = models.IntegerField(default=0, help_text="[sandbox] next N API requests get 503 with Retry-After")
    unavailable_retry_after = models.PositiveIntegerField(default=0)
    session_seconds = models.PositiveIntegerField(default=7200)

    @classmethod
    def get(cls) -> OrgState:
        state, _ = cls.objects.get_or_create(id=1)
        return state
