"""Canonical business objects: the hub's own view of quote-to-cash.

Every object has a hub UUID; `ExternalRef` maps (system, object type, external id)
to it, so a Salesforce Account, a NetSuite customer and a Stripe customer are known
to be the same party. Money is `Decimal` + ISO 4217 currency, never float.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

MONEY = {"max_digits": 18, "decimal_places": 4}
currency_validator = RegexValidator(r"^[A-Z]{3}$", "Use an ISO 4217 code in upper case, such as USD.")


def CurrencyField(**kwargs):  # noqa: N802 — reads like a field class at call sites
    return models.CharField(max_length=3, validators=[currency_validator], **kwargs)


def MoneyField(**kwargs):  # noqa: N802
    kwargs.setdefault("default", Decimal("0"))
    return models.DecimalField(**MONEY, **kwargs)


class System(models.TextChoices):
    SALESFORCE = "salesforce", "Salesforce"
    NETSUITE = "netsuite", "NetSuite"
    STRIPE = "stripe", "Stripe Billing"
    HUB = "hub", "Q2C Portal"
    API = "api", "Events API"


class SystemRole(models.TextChoices):
    CRM = "crm", "CRM / CPQ"
    BILLING = "billing", "Subscription billing"
    ERP = "erp", "ERP"


class ChargeType(models.TextChoices):
    """How a line bills (docs/MONEY.md). Only recurring lines are ARR; a line whose charge type is
    not known is refused as a mapping error, never guessed."""

    RECURRING = "recurring"
    ONE_TIME = "one_time", "one-time"
    USAGE = "usage"


class BillingInterval(models.TextChoices):
    MONTH = "month"
    YEAR = "year"


def ChargeTypeField(**kwargs):  # noqa: N802
    kwargs.setdefault("blank", True)
    return models.CharField(max_length=16, choices=ChargeType.choices, **kwargs)


def IntervalField(**kwargs):  # noqa: N802
    return models.CharField(max_length=8, choices=BillingInterval.choices, blank=True, **kwargs)


def IntervalCountField(**kwargs):  # noqa: N802
    return models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)], **kwargs)


def annual_factor(charge_type: str, interval: str, interval_count: int) -> Decimal:
    """How many times a year a line bills: monthly × 12, annual × 1, every n months × 12/n; one-time and usage 0."""
    if charge_type != ChargeType.RECURRING:
        return Decimal(0)
    per_year = Decimal(12) if interval == BillingInterval.MONTH else Decimal(1)
    return per_year / Decimal(interval_count or 1)


class CanonicalBase(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class LegalEntity(models.Model):
    """An ERP subsidiary: orders and invoices belong to one."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    base_currency = CurrencyField()
    erp_subsidiary_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "legal entities"

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class CurrencyRate(models.Model):
    """Units of the reporting currency for one unit of `currency`, valid from a date."""

    currency = CurrencyField()
    rate_to_reporting = models.DecimalField(max_digits=18, decimal_places=8, validators=[MinValueValidator(Decimal("0"))])
    valid_from = models.DateField()

    class Meta:
        ordering = ["currency", "-valid_from"]
        constraints = [models.UniqueConstraint(fields=["currency", "valid_from"], name="uniq_rate_per_day")]

    def __str__(self) -> str:
        return f"{self.currency} {self.rate_to_reporting} from {self.valid_from}"


class Customer(CanonicalBase):
    name = models.CharField(max_length=255)
    email = models.EmailField(blank=True)
    tax_id = models.CharField(max_length=64, blank=True)
    payment_terms = models.CharField(max_length=32, blank=True)
    segment = models.CharField(max_length=64, blank=True)
    account_owner = models.CharField(max_length=128, blank=True)
    currency = CurrencyField(default="USD")
    legal_entity = models.ForeignKey(LegalEntity, null=True, blank=True, on_delete=models.PROTECT)
    # master data (sync/customers/): match keys kept beside the values, so candidates are found by index
    country = models.CharField(max_length=64, blank=True)
    name_key = models.CharField(max_length=255, blank=True, help_text="normalised name: legal suffix, case, punctuation, accents removed")
    tax_key = models.CharField(max_length=64, blank=True, help_text="the tax id compacted, when valid (python-stdnum)")
    email_domain = models.CharField(max_length=255, blank=True, help_text="company email domain (free-mail excluded)")
    field_sources = models.JSONField(default=dict, blank=True, help_text="field → system whose value it holds (ownership rules)")
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_customers", help_text="set while merged into another customer"
    )

    class Meta:
        indexes = [
            models.Index(fields=["name"]),
            GinIndex(OpClass("name_key", name="gin_trgm_ops"), name="customer_name_key_trgm_idx", condition=Q(merged_into__isnull=True)),
            models.Index(fields=["tax_key"], name="customer_tax_key_idx", condition=Q(merged_into__isnull=True) & ~Q(tax_key="")),
            models.Index(fields=["email_domain"], name="customer_email_domain_idx", condition=Q(merged_into__isnull=True) & ~Q(email_domain="")),
        ]

    def __str__(self) -> str:
        return self.name


class Product(CanonicalBase):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    active = models.BooleanField(default=True)
    charge_type = ChargeTypeField(help_text="as the CRM catalogue says; blank until a line of it was seen")
    interval = IntervalField()
    interval_count = IntervalCountField()

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Price(CanonicalBase):
    class Interval(models.TextChoices):
        MONTH = "month"
        YEAR = "year"
        ONE_TIME = "one_time", "one-time"

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="prices")
    currency = CurrencyField()
    unit_amount = MoneyField()
    interval = models.CharField(max_length=16, choices=Interval.choices, default=Interval.MONTH)
    metered = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["product", "currency", "interval", "metered"], name="uniq_price_per_product_currency")]


class Contract(CanonicalBase):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVATED = "activated"
        TERMINATED = "terminated"
        EXPIRED = "expired"

    number = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="contracts")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    term_months = models.PositiveIntegerField(default=12)
    value = MoneyField()
    currency = CurrencyField(default="USD")


class Order(CanonicalBase):
    class Status(models.TextChoices):
        CLOSED_WON = "closed_won", "Closed won"
        ACTIVATED = "activated"
        CANCELLED = "cancelled"

    number = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    contract = models.ForeignKey(Contract, null=True, blank=True, on_delete=models.SET_NULL)
    legal_entity = models.ForeignKey(LegalEntity, null=True, blank=True, on_delete=models.PROTECT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CLOSED_WON)
    currency = CurrencyField()
    total_amount = MoneyField()
    effective_date = models.DateField(null=True, blank=True)
    closed_won_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT)
    sku = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    quantity = models.DecimalField(max_digits=14, decimal_places=4, default=Decimal("1"))
    unit_price = MoneyField()
    amount = MoneyField()
    charge_type = ChargeTypeField()
    interval = IntervalField()
    interval_count = IntervalCountField()

    @property
    def annual_value(self) -> Decimal:
        return self.amount * annual_factor(self.charge_type, self.interval, self.interval_count)


class Subscription(CanonicalBase):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled"
        TRIALING = "trialing"
        INCOMPLETE = "incomplete"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL)
    contract = models.ForeignKey(Contract, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    currency = CurrencyField()
    arr = MoneyField(help_text="Annual recurring revenue in the subscription's currency")
    start_date = models.DateField(null=True, blank=True)
    billing_starts_at = models.DateTimeField(
        null=True, blank=True, help_text="when billing issues the first invoice (the subscription's start in billing); unbilled ARR counts from a day later"
    )
    current_period_end = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["billing_starts_at"], name="sub_active_billing_idx", condition=models.Q(status="active"))]


class SubscriptionItem(models.Model):
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT)
    sku = models.CharField(max_length=64)
    quantity = models.DecimalField(max_digits=14, decimal_places=4, default=Decimal("1"))
    unit_amount = MoneyField()
    charge_type = ChargeTypeField(default=ChargeType.RECURRING)
    interval = IntervalField()
    interval_count = IntervalCountField()


class Amendment(CanonicalBase):
    subscription = models.ForeignKey(Subscription, null=True, blank=True, on_delete=models.SET_NULL)
    contract = models.ForeignKey(Contract, null=True, blank=True, on_delete=models.SET_NULL)
    effective_date = models.DateField(null=True, blank=True)
    arr_delta = MoneyField()
    currency = CurrencyField()
    changes = models.JSONField(default=dict, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)


class Invoice(CanonicalBase):
    class Status(models.TextChoices):
        """The invoice's payment state (docs/MONEY.md): open (nothing applied), partially paid
        (0 < applied < due), paid (applied = due), overpaid (applied > due: a credit balance)."""

        DRAFT = "draft"
        OPEN = "open"
        PARTIALLY_PAID = "partially_paid", "partially paid"
        PAID = "paid"
        OVERPAID = "overpaid"
        VOID = "void"
        UNCOLLECTIBLE = "uncollectible"

    number = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(Subscription, null=True, blank=True, on_delete=models.SET_NULL)
    legal_entity = models.ForeignKey(LegalEntity, null=True, blank=True, on_delete=models.PROTECT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    currency = CurrencyField()
    subtotal = MoneyField()
    tax = MoneyField()
    total = MoneyField()
    amount_credited = MoneyField(help_text="credit memos issued against the invoice")
    amount_paid = MoneyField(help_text="received payments applied to the invoice")
    amount_remaining = MoneyField(help_text="max(total − credited − paid, 0): still to collect")
    due_date = models.DateField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["posted_at", "finalized_at"]),
            models.Index(fields=["status", "-finalized_at"], name="invoice_state_idx"),
            models.Index(fields=["-finalized_at"], name="invoice_finalized_idx"),
            models.Index(OpClass(Upper("number"), name="text_pattern_ops"), name="invoice_number_prefix_idx"),  # search by number prefix
        ]

    @property
    def amount_due(self) -> Decimal:
        return self.total - self.amount_credited

    @property
    def credit_balance(self) -> Decimal:
        """What the customer paid beyond what was due (overpaid invoices)."""
        return max(self.amount_paid - self.amount_due, Decimal(0))


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=255, blank=True)
    quantity = models.DecimalField(max_digits=14, decimal_places=4, default=Decimal("1"))
    unit_amount = MoneyField()
    amount = MoneyField()
    charge_type = ChargeTypeField()


class Payment(CanonicalBase):
    class Status(models.TextChoices):
        RECEIVED = "received"
        FAILED = "failed"

    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.SET_NULL, related_name="payments")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    status = models.CharField(max_length=16, choices=Status.choices)
    amount = MoneyField()
    currency = CurrencyField()
    occurred_at = models.DateTimeField()
    failure_reason = models.CharField(max_length=255, blank=True)


class CreditMemo(CanonicalBase):
    number = models.CharField(max_length=64, unique=True)
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.SET_NULL)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_memos")
    amount = MoneyField()
    currency = CurrencyField()
    reason = models.CharField(max_length=255, blank=True)
    issued_at = models.DateTimeField()


class UsageRecord(CanonicalBase):
    subscription = models.ForeignKey(Subscription, null=True, blank=True, on_delete=models.SET_NULL)
    metric = models.CharField(max_length=64)
    quantity = models.DecimalField(max_digits=18, decimal_places=4)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)


class ExternalRef(models.Model):
    """(system, object type, external id) ↔ canonical object, unique per system and type."""

    system = models.CharField(max_length=32, choices=System.choices)
    object_type = models.CharField(max_length=64, help_text="The system's own object name, e.g. Account, customer")
    external_id = models.CharField(max_length=255)
    canonical_type = models.CharField(max_length=32, help_text="e.g. customer, order, invoice")
    canonical_id = models.UUIDField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["system", "object_type", "external_id"], name="uniq_external_ref"),
        ]
        indexes = [models.Index(fields=["canonical_type", "canonical_id"])]

    def __str__(self) -> str:
        return f"{self.system}:{self.object_type}:{self.external_id} → {self.canonical_type}:{self.canonical_id}"


class OwnershipRule(models.Model):
    """System-of-record matrix: which role is authoritative for a group of fields."""

    field_group = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=255)
    fields = models.JSONField(default=list, help_text="Canonical field names in this group")
    owner_role = models.CharField(max_length=16, choices=SystemRole.choices)

    class Meta:
        ordering = ["field_group"]

    def __str__(self) -> str:
        return f"{self.field_group} → {self.get_owner_role_display()}"
