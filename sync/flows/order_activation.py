"""Order activation: closed-won → ERP customer + sales order → billing subscription → CRM "Activated".

Order cycle time = activated_at − closed_won_at (activated when billing has the subscription).
"""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from sync.canonical.charges import ChargeError, arr, charge_of, first_year_value
from sync.canonical.events import money, when
from sync.canonical.store import legal_entity, order_upsert, ref_set, safe_external_id
from sync.connectors import registry
from sync.customers.matching import customer_for_account
from sync.models import ChargeType, FlowRun, FlowType, Order, Subscription, SubscriptionItem

from .base import Flow, Step, StepContext, StepValidationError
from .common import crm_status, ensure_billing_customer, ensure_erp_customer, wait_for_review
from .deals import of_order


def validate(ctx: StepContext) -> dict:
    data = ctx.data
    entity = legal_entity(data.get("legal_entity"), data["currency"])
    if entity is None:
        wanted = data.get("legal_entity") or f"an entity for {data['currency']}"
        raise StepValidationError("validation", f"Unknown legal entity: {wanted}. Add it under Admin › Legal entities or fix the order.", "legal_entity")
    if entity.base_currency != data["currency"] and not data.get("legal_entity"):
        raise StepValidationError("validation", f"No legal entity bills in {data['currency']}.", "currency")
    for i, line in enumerate(data["lines"]):
        if money(line["unit_price"]) < 0:
            raise StepValidationError("validation", "Unit price cannot be negative.", f"lines[{i}].unit_price")
        try:
            charge_of(line, i)  # a line that does not say how it bills is refused, never guessed
        except ChargeError as exc:
            raise StepValidationError("mapping", exc.message, exc.field) from None
    source = ctx.run.context["event"].get("source", "api")
    # ensure customer: the account is matched against the canonical customers (sync/customers/);
    # a possible duplicate parks the order until a person decides, before any document is written
    resolution = customer_for_account(source=source, account=data["account"], currency=data["currency"], entity=entity, flow_run=ctx.run)
    wait_for_review(resolution)
    customer = resolution.customer
    order = order_upsert(source=source, data=data, customer=customer, entity=entity)
    ctx.request({"checked": ["legal_entity", "currency", "lines", "charge types"], "order_number": data["order_number"]})
    return {
        "customer_id": str(customer.pk),
        "order_id": str(order.pk),
        "legal_entity": entity.code,
        "erp_subsidiary_id": entity.erp_subsidiary_id,
        "crm_account_id": data["account"]["external_id"],
    }


def erp_sales_order(ctx: StepContext) -> dict:
    erp = registry.erp()
    validated = ctx.state["validate"]
    order = {**ctx.data, "erp_subsidiary_id": validated["erp_subsidiary_id"], "legal_entity": validated["legal_entity"]}
    external_id = safe_external_id("SO", ctx.data["order_number"])
    customer_id = ctx.state["erp_customer"]["erp_customer_id"]
    ctx.request({"system": erp.system, "operation": "upsert sales order", "external_id": external_id, "customer_id": customer_id, "order": order})
    result = erp.upsert_sales_order(order=order, customer_id=customer_id, external_id=external_id)
    ref_set(system=erp.system, object_type="salesOrder", external_id=result.external_id, canonical_type="order", canonical_id=validated["order_id"])
    return {"sales_order_id": result.external_id, "external_id": external_id, "created": result.created}


def close_sales_order(ctx: StepContext) -> dict:
    erp = registry.erp()
    done = ctx.state["erp_sales_order"]
    result = erp.close_sales_order(sales_order_id=done["sales_order_id"], external_id=done["external_id"])
    return {"closed": result.external_id}


def billing_subscription(ctx: StepContext) -> dict:
    """The subscription carries the recurring (and usage) lines; one-time lines go with it as
    one-time items of its first invoice (billing decides how: Stripe `add_invoice_items`)."""
    lines = ctx.data["lines"]
    billed = [line for i, line in enumerate(lines) if charge_of(line, i).charge_type != ChargeType.ONE_TIME]
    if not billed:
        return {"skipped": "no recurring or usage lines"}
    billing = registry.billing()
    customer_id = ctx.state["billing_customer"]["billing_customer_id"]
    order = {**ctx.data, "lines": lines}
    ctx.request(
        {"system": billing.system, "operation": "create subscription", "customer_id": customer_id, "idempotency_key": ctx.idempotency_key, "order": order}
    )
    result = billing.create_subscription(customer_id=customer_id, order=order, idempotency_key=ctx.idempotency_key)
    _record_subscription(ctx, billed, result.external_id, started=result.starts_at)
    return {"subscription_id": result.external_id, "created": result.created}


def _record_subscription(ctx: StepContext, lines: list[dict], external_id: str, started=None) -> None:
    """The hub's own view of the subscription (ARR of its recurring lines in the order currency),
    for ARR, unbilled ARR and missing-invoice checks."""
    order = Order.objects.get(pk=ctx.state["validate"]["order_id"])
    subscription, _ = Subscription.objects.update_or_create(
        order=order,
        defaults={
            "customer_id": order.customer_id,
            "currency": order.currency,
            "arr": arr(lines),
            "status": Subscription.Status.ACTIVE,
            "start_date": order.effective_date,
            "billing_starts_at": started or timezone.now(),
        },
    )
    ref_set(
        system=registry.system_of("billing"), object_type="subscription", external_id=external_id, canonical_type="subscription", canonical_id=subscription.pk
    )
    subscription.items.all().delete()
    items = []
    for i, line in enumerate(lines):
        charge = charge_of(line, i)
        items.append(
            SubscriptionItem(
                subscription=subscription,
                sku=line["sku"],
                quantity=Decimal(str(line["quantity"])),
                unit_amount=money(line["unit_price"]),
                charge_type=charge.charge_type,
                interval=charge.interval,
                interval_count=charge.interval_count,
            )
        )
    SubscriptionItem.objects.bulk_create(items)


def cancel_subscription(ctx: StepContext) -> dict:
    sub = ctx.state.get("billing_subscription", {}).get("subscription_id")
    if not sub:
        return {"skipped": True}
    billing = registry.billing()
    billing.cancel_subscription(subscription_id=sub, idempotency_key=f"{ctx.idempotency_key}:undo")
    return {"cancelled": sub}


def crm_fields(ctx: StepContext) -> dict:
    return {
        "Status": "Activated",
        "Q2C_Status__c": "Activated",
        "ERP_Order_Id__c": ctx.state.get("erp_sales_order", {}).get("sales_order_id", ""),
        "Billing_Subscription_Id__c": ctx.state.get("billing_subscription", {}).get("subscription_id", ""),
    }


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = data["order_number"]
    run.account_name = data["account"]["name"][:255]
    run.currency = data["currency"]
    run.legal_entity = data.get("legal_entity", "") or ""
    run.amount = first_year_value(data["lines"])  # contract value: recurring ARR + one-time fees (docs/MONEY.md)
    run.closed_won_at = when(data["closed_won_at"])
    run.business_started_at = run.closed_won_at or timezone.now()


def on_complete(run: FlowRun, now) -> None:
    run.activated_at = now
    Order.objects.filter(number=run.document_number).update(status=Order.Status.ACTIVATED, activated_at=now)


FLOW = Flow(
    flow_type=FlowType.ORDER_ACTIVATION,
    event_types=("order.closed_won.v2",),  # v1 arrives upcast (sync/canonical/contracts.py)
    business_key=lambda data: data["order_number"],
    steps=[
        Step("validate", "hub", validate),
        Step("erp_customer", "erp", ensure_erp_customer),
        Step("billing_customer", "billing", ensure_billing_customer),
        Step("erp_sales_order", "erp", erp_sales_order, close_sales_order, "close the ERP sales order"),
        Step("billing_subscription", "billing", billing_subscription, cancel_subscription, "cancel the billing subscription"),
        Step("crm_status", "hub", crm_status(crm_fields), writeback=True),
    ],
    prepare=prepare,
    deal_of=of_order,
    on_complete=on_complete,
    provides=lambda data: [f"order:{data['order_number']}"],
    description="Closed-won deal → ERP sales order → billing subscription → CRM Activated",
)
