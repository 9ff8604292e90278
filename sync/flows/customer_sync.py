"""Customer sync: match/dedupe → ERP customer → billing customer → ids back to the CRM."""

from __future__ import annotations

import hashlib
import json

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sync.canonical.events import when
from sync.canonical.store import customer_from_account, legal_entity, lock_account, ref_canonical
from sync.models import Customer, FlowRun, FlowType

from .base import Flow, Step, StepContext, StepValidationError
from .common import crm_status, ensure_billing_customer, ensure_erp_customer


@transaction.atomic
def match(ctx: StepContext) -> dict:
    """Link the account to its hub customer; a *different* account with the same name or tax id is a
    possible duplicate (a master-data conflict for a person to decide), not silently merged."""
    data = ctx.data
    account = data["account"]
    source = ctx.run.context["event"].get("source", "api")
    lock_account(source, account["external_id"])
    known = ref_canonical(system=source, object_type="Account", external_id=account["external_id"])
    if not known:
        same = Q(name__iexact=account["name"].strip())
        if account.get("tax_id"):
            same |= Q(tax_id=account["tax_id"])
        twin = Customer.objects.filter(same).first()
        if twin is not None:
            raise StepValidationError(
                "duplicate", f"Possible duplicate of customer {twin.name} (same name or tax id). Merge the CRM accounts or link this one to it.", "account.name"
            )
    entity = legal_entity(data.get("legal_entity"), data["currency"])
    if entity is None:
        raise StepValidationError(
            "validation", f"Unknown legal entity: {data.get('legal_entity') or data['currency']}. Add it under Admin › Legal entities.", "legal_entity"
        )
    customer = customer_from_account(source=source, account=account, currency=data["currency"], entity=entity)
    return {"customer_id": str(customer.pk), "crm_account_id": account["external_id"]}


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
