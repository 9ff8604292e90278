"""State of the Business Central sandbox, in PostgreSQL.

Every entity the API serves (customers, items, currencies, salesOrders and their lines,
salesInvoices, salesCreditMemos, customerPaymentJournals and their customerPayments,
generalLedgerEntries, companyInformation) is one `Entity` row of its company: the API id is
`guid`, the fields are the JSON body BC would answer with (amounts as exact decimals), and
`version` is what its `@odata.etag` encodes — every write adds one. Lines and journal lines
point at their document (`parent`). Webhook subscriptions, the notifications waiting for
delivery, issued tokens and the per-client request windows of the rate limit have tables of
their own; `SandboxSettings` holds the knobs a test turns (rate limit, page size, token life).
"""

from __future__ import annotations

import uuid

from django.db import models

from sync.connectors.netsuite.wire import ExactDecoder, ExactEncoder


class Company(models.Model):
    id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=30)
    display_name = models.CharField(max_length=250)
    lcy_code = models.CharField(max_length=10, default="USD")  # General Ledger Setup: local currency
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "companies"

    def __str__(self) -> str:
        return self.name


class Entity(models.Model):
    id = models.BigAutoField(primary_key=True)  # insertion order: what server-driven paging walks
    guid = models.UUIDField(default=uuid.uuid4, unique=True)
    company = models.ForeignKey(Company, on_delete=models.CASCADE)
    entity_set = models.CharField(max_length=40)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    data = models.JSONField(default=dict, encoder=ExactEncoder, decoder=ExactDecoder)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    last_modified = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name_plural = "entities"
        indexes = [models.Index(fields=["company", "entity_set", "id"]), models.Index(fields=["parent", "entity_set"])]

    def __str__(self) -> str:
        return f"{self.entity_set} {self.guid}"


class NumberSeries(models.Model):
    """A No. Series: the last number handed out per company and series code."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE)
    code = models.CharField(max_length=20)
    last_number = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "number series"
        constraints = [models.UniqueConstraint(fields=["company", "code"], name="uniq_bc_sandbox_series")]


class Subscription(models.Model):
    subscription_id = models.CharField(max_length=32, unique=True)
    company = models.ForeignKey(Company, on_delete=models.CASCADE)
    entity_set = models.CharField(max_length=40)
    notification_url = models.CharField(max_length=2048)
    resource = models.CharField(max_length=2048)
    client_state = models.CharField(max_length=2048, blank=True)
    user_id = models.UUIDField(default=uuid.uuid4)
    version = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_modified = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.subscription_id} → {self.notification_url}"


class Notification(models.Model):
    """One change waiting to be told to a subscription (several for one resource are sent as one)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="notifications")
    resource = models.CharField(max_length=2048)
    change_type = models.CharField(max_length=16)
    changed_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["delivered_at", "changed_at"])]


class TokenGrant(models.Model):
    """An access token the sandbox's token endpoint issued (counted by tests of token caching)."""

    client_id = models.CharField(max_length=255)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()


class RateWindow(models.Model):
    """Requests of one client in one second: the 5-minute sliding window sums the last 300."""

    client_id = models.CharField(max_length=255)
    second = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_id", "second"], name="uniq_bc_sandbox_rate_second")]


class SandboxSettings(models.Model):
    """The sandbox's knobs (one row; absent = BC's documented values)."""

    name = models.CharField(max_length=32, unique=True, default="business_central")
    rate_limit_requests = models.PositiveIntegerField(default=6000, help_text="requests per client within the window (BC: 6,000 per 5 minutes)")
    rate_limit_window_seconds = models.PositiveIntegerField(default=300)
    max_page_size = models.PositiveIntegerField(default=20000, help_text="server-driven paging: entities per page at most (BC online: 20,000)")
    token_lifetime_seconds = models.PositiveIntegerField(default=3599, help_text="expires_in of issued tokens")
    tokens_valid_after = models.DateTimeField(null=True, blank=True, help_text="tokens issued before this are refused (revocation)")
    subscription_lifetime_seconds = models.PositiveIntegerField(default=3 * 24 * 3600)
    notification_delay_seconds = models.PositiveIntegerField(default=30, help_text="BC waits this long after a change before notifying")
    collection_threshold = models.PositiveIntegerField(default=1000, help_text="more changes than this in one delivery: one `collection` notification")
    retry_hours = models.PositiveIntegerField(default=36, help_text="how long a notification answered 408/429/5xx is retried")

    class Meta:
        verbose_name_plural = "sandbox settings"

    def __str__(self) -> str:
        return self.name
