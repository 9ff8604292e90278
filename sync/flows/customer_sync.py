"""Customer sync: match/dedupe → ERP customer → billing customer → ids back to the CRM."""

from __future__ import annotations

import hashlib
import json

from django.utils import timezone

from sync.canonical.events import when
from sync.canonical.store import legal_entity
from sync.customers.matching import customer_for_account
from sync.models import FlowRun, FlowType

from .base import Flow, Step, StepContext, StepValidationError
from .common import crm_status, ensure_billing_customer, ensure_erp_customer, wait_for_review


def match(ctx: StepContext) -> dict:
    """Match the account against the canonical customers (sync/customers/): a record the hub knows
    updates its customer; a new one is linked, created, or — when it may be the same party as an
    existing customer — waits (parked) for a person to merge or keep them apart."""
    data = ctx.data
    account = data["account"]
    source = ctx.run.context["event"].get("source", "api")
    entity = legal_entity(data.get("legal_entity"), data["currency"])
    if entity is None:
        raise StepValidationError(
            "validation", f"Unknown legal entity: {data.get('legal_entity') or data['currency']}. Add it under Admin › Legal entities.", "legal_entity"
        )
    resolution = customer_for_account(source=source, account=account, currency=data["currency"], entity=entity, flow_run=ctx.run)
    wait_for_review(resolution)
    customer = resolution.customer
    return {"customer_id": str(customer.pk), "crm_account_id": account["external_id"], "match": resolution.outcome}


def prepare(run: FlowRun, data: dict) -> None:
    run.document_number = data["account"]["external_id"][:64]
    run.account_name = data["account"]["name"][:255]
    run.currency = data["currency"]
    run.business_started_at = when(run.context["event"].get("occurred_at")) or timezone.now()


FLOW = Flow(
    flow_type=FlowType.CUSTOMER_SYNC,
    event_types=("customer.upserted.v1",),
    # one run per distinct version of the account (a changed account syncs again; a repeat does not)
    business_key=lambda data: f"{data['account']['external_id']}:{hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]}",
    steps=[
        Step("match", "hub", match),
        Step("erp_customer", "erp", lambda ctx: ensure_erp_customer(ctx, key="match")),
        Step("billing_customer", "billing", lambda ctx: ensure_billing_customer(ctx, key="match")),
        Step(
            "crm_ids",
            "hub",
            crm_status(
                lambda ctx: {
                    "ERP_Customer_Id__c": ctx.state["erp_customer"]["erp_customer_id"],
                    "Billing_Customer_Id__c": ctx.state["billing_customer"]["billing_customer_id"],
                },
                object_type="Account",
                record_for=lambda ctx: ctx.data["account"]["external_id"],
            ),
            writeback=True,
        ),
    ],
    prepare=prepare,
    description="CRM account → ERP customer → billing customer → ids back to the CRM",
)
