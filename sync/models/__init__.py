from .canonical import (  # noqa: F401
    Amendment, Contract, CreditMemo, CurrencyRate, Customer, ExternalRef, Invoice, InvoiceLine,
    LegalEntity, Order, OrderLine, OwnershipRule, Payment, Price, Product, Subscription,
    SubscriptionItem, System, SystemRole, UsageRecord,
)
from .engine import (  # noqa: F401
    TRANSIENT_ERROR_CLASSES, AuditEntry, ConnectorCall, ConnectorState, ErrorClass, ExceptionComment,
    FlowRun, FlowStep, FlowType, InboxEvent, OutboxMessage, ReconciliationBreak, ReconciliationRun,
    SyncException,
)
