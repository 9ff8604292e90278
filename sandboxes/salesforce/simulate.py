"""Life in the sandbox org: reps closing deals, CPQ amendments and renewals, and the relay
that pushes Change Data Capture messages to the hub.

Call these in any process on the project's database (the demo driver, a test, a shell), or
over HTTP on the sandbox server: `POST /__sandbox__/salesforce/close-won` (JSON body = the
keyword arguments), `/amend`, `/renew`, `/cancel`, `/relay`.

    deal = close_won_deal(account_name="Acme Corp", currency="EUR")   # UI changes → CDC events
    relay_pending_events()                                            # POSTs them to the hub

The relay plays the part of a Flow/Apex callout (or a CometD/Pub-Sub bridge): it posts
`{"events": [<CometD message>, …]}` to SALESFORCE_SANDBOX_RELAY_URL, signed
`X-Q2C-Signature: t=<unix>,v1=<hex HMAC-SHA256(webhook_secret, "<t>." + raw body)>` (stamped at each
attempt, so a retry is signed afresh), and keeps
pending/delivered/attempts per event with exponential backoff. It never holds a database
transaction open while it waits on the network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import time
from datetime import date, timedelta
from decimal import Decimal

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from sandboxes.db import DB
from sandboxes.kit.faults import fault_config

from . import schema, store
from .models import AccessToken, ChangeEvent, ConnectedApp, SRecord

DEFAULT_RELAY_URL = "http://127.0.0.1:8000/api/v1/webhooks/salesforce/"

# SKU, name, family, charge type, billing frequency, list price — the same SKUs as the ERP's
# item catalogue (sandboxes/netsuite/seed.py); CPQ says how each bills (SBQQ__ChargeType__c)
CATALOGUE = [
    ("PLAT-SEAT", "Platform seat (per user)", "Subscription", "Recurring", "Monthly", "45.00"),
    ("PLAT-API", "Platform API access", "Subscription", "Recurring", "Monthly", "500.00"),
    ("SUPPORT-PREM", "Premium support", "Services", "Recurring", "Monthly", "900.00"),
    ("ONBOARD-FEE", "Onboarding fee", "Services", "One-Time", None, "2500.00"),
    ("USAGE-API-CALLS", "API calls (per 1,000)", "Usage", "Usage", "Monthly", "0.0125"),
    ("PLAT-STD", "Platform Standard (per seat)", "Subscription", "Recurring", "Monthly", "39.00"),
    ("PLAT-PRO", "Platform Professional (per seat)", "Subscription", "Recurring", "Monthly", "79.00"),
    ("PLAT-ENT", "Platform Enterprise (annual)", "Subscription", "Recurring", "Annual", "24000.00"),
    ("SUP-PREM", "Premium Support (annual)", "Services", "Recurring", "Annual", "4800.00"),
    ("ONB-PRO", "Onboarding Package", "Services", "One-Time", None, "2500.00"),
    ("API-CALLS", "API Calls (per 1k)", "Usage", "Usage", "Monthly", "0.50"),
]
COMPANY_WORDS = (
    [
        "Acme",
        "Globex",
        "Initech",
        "Umbrella",
        "Stark",
        "Wayne",
        "Hooli",
        "Vandelay",
        "Tyrell",
        "Cyberdyne",
        "Soylent",
        "Wonka",
        "Nakatomi",
        "Oscorp",
        "Gringotts",
    ],
    ["Industries", "Labs", "Systems", "Holdings", "Analytics", "Logistics", "Health", "Robotics", "Foods", "Capital"],
)
CURRENCY_ENTITY = {
    "USD": "US01",
    "CAD": "US01",
    "EUR": "DE01",
    "GBP": "UK01",
    "CHF": "DE01",
    "SEK": "DE01",
    "AUD": "AU01",
    "JPY": "JP01",
}  # the demo ERP subsidiaries


def _obj(name: str) -> schema.SObject:
    return schema.sobject(name)


def ensure_catalogue() -> dict[str, str]:
    """Product2 records for the demo catalogue (created once); {sku: Product2 Id}."""
    ids = {}
    ctx = store.ui_ctx()
    with transaction.atomic(using=DB):
        for sku, name, family, charge, frequency, _price in CATALOGUE:
            found = SRecord.objects.filter(sobject="Product2", is_deleted=False, fields__ProductCode=sku).first()
            if found is None:
                found = store.create(
                    ctx,
                    _obj("Product2"),
                    {
                        "Name": name,
                        "ProductCode": sku,
                        "Family": family,
                        "IsActive": True,
                        "External_Id__c": sku,
                        "SBQQ__ChargeType__c": charge,
                        "SBQQ__BillingFrequency__c": frequency,
                    },
                )
            ids[sku] = found.id
    return ids


def _product(sku: str, ctx: store.Ctx) -> SRecord:
    """The catalogue's product, or — for a SKU a rep typed that the catalogue lacks — a new
    product with no charge type, as a hand-made product in an org is (the hub refuses to guess)."""
    found = SRecord.objects.filter(sobject="Product2", is_deleted=False, fields__ProductCode=sku).first()
    if found is None:
        found = store.create(ctx, _obj("Product2"), {"Name": sku, "ProductCode": sku, "External_Id__c": sku})
    return found


def _default_lines() -> list[dict]:
    prices = {sku: price for sku, *_rest, price in CATALOGUE}
    picks = random.sample(["PLAT-STD", "PLAT-PRO", "PLAT-ENT", "SUP-PREM", "ONB-PRO"], k=random.randint(1, 3))
    lines = []
    for sku in picks:
        quantity = random.choice([5, 10, 25, 50, 100]) if sku in ("PLAT-STD", "PLAT-PRO") else 1
        lines.append({"sku": sku, "quantity": quantity, "unit_price": prices[sku]})
    return lines


def _account_name() -> str:
    return f"{random.choice(COMPANY_WORDS[0])} {random.choice(COMPANY_WORDS[1])} {random.randint(100, 999)}"


def close_won_deal(
    account_name: str | None = None, lines: list[dict] | None = None, currency: str = "USD", fail: bool = False, term_months: int = 12, email: str | None = None
) -> dict:
    """A rep closes a deal in Lightning Experience: Account → Opportunity (+ products) →
    Closed Won → Order (+ products) and Contract, each step its own transaction, every change
    a CDC event with a UI changeOrigin.

    lines: [{"sku", "quantity", "unit_price"}]; unknown SKUs become new products.
    fail=True puts the account name in the sandbox's fail_records, so the hub's status write-back
    to this order fails with FIELD_CUSTOM_VALIDATION_EXCEPTION (an exception in the queue).
    Returns the ids and numbers the demo and tests need.
    """
    ensure_catalogue()
    ctx = store.ui_ctx()
    account_name = account_name or _account_name()
    lines = lines or _default_lines()
    today = timezone.now().date()
    if fail:
        config = fault_config("salesforce")
        if account_name not in (config.fail_records or []):
            config.fail_records = [*(config.fail_records or []), account_name]
            config.save(update_fields=["fail_records", "updated_at"])
    with transaction.atomic(using=DB):
        account = SRecord.objects.filter(sobject="Account", is_deleted=False, fields__Name=account_name).first()
        if account is None:
            slug = "".join(ch for ch in account_name.lower() if ch.isalnum())[:20] or "customer"
            account = store.create(
                ctx,
                _obj("Account"),
                {
                    "Name": account_name,
                    "Type": "Customer",
                    "CurrencyIsoCode": currency,
                    "BillingCountry": {"USD": "US", "EUR": "DE", "GBP": "GB"}.get(currency, "US"),
                    "Billing_Email__c": email or f"billing@{slug}.example",
                    "Legal_Entity__c": CURRENCY_ENTITY.get(currency, "US01"),
                    "Segment__c": random.choice(["SMB", "Mid-Market", "Enterprise"]),
                },
            )
    with transaction.atomic(using=DB):
        ctx = store.ui_ctx()
        opportunity = store.create(
            ctx,
            _obj("Opportunity"),
            {
                "Name": f"{account_name} - New Business",
                "AccountId": account.id,
                "StageName": "Negotiation/Review",
                "CloseDate": today.isoformat(),
                "CurrencyIsoCode": currency,
                "Type": "New Business",
            },
        )
        for line in lines:
            product = _product(line["sku"], ctx)
            store.create(
                ctx,
                _obj("OpportunityLineItem"),
                {"OpportunityId": opportunity.id, "Product2Id": product.id, "Quantity": line["quantity"], "UnitPrice": str(line["unit_price"])},
            )
    with transaction.atomic(using=DB):
        store.update(store.ui_ctx(), _obj("Opportunity"), SRecord.objects.get(pk=opportunity.id), {"StageName": "Closed Won"})
    with transaction.atomic(using=DB):
        ctx = store.ui_ctx()  # an autolaunched flow turns the won opportunity into an order + contract
        contract = store.create(
            ctx,
            _obj("Contract"),
            {
                "AccountId": account.id,
                "Status": "Draft",
                "StartDate": today.isoformat(),
                "ContractTerm": term_months,
                "CurrencyIsoCode": currency,
                "SBQQ__Opportunity__c": opportunity.id,
            },
        )
        order = store.create(
            ctx,
            _obj("Order"),
            {
                "AccountId": account.id,
                "OpportunityId": opportunity.id,
                "ContractId": contract.id,
                "EffectiveDate": today.isoformat(),
                "Status": "Draft",
                "Type": "New",
                "CurrencyIsoCode": currency,
                "Legal_Entity__c": account.fields.get("Legal_Entity__c"),
                "Q2C_Status__c": "Pending",
            },
        )
        for line in lines:
            product = _product(line["sku"], ctx)
            store.create(
                ctx,
                _obj("OrderItem"),
                {
                    "OrderId": order.id,
                    "Product2Id": product.id,
                    "Quantity": line["quantity"],
                    "UnitPrice": str(line["unit_price"]),
                    "ServiceDate": today.isoformat(),
                },
            )
        store.update(ctx, _obj("Contract"), SRecord.objects.get(pk=contract.id), {"SBQQ__Order__c": order.id})
    order = SRecord.objects.get(pk=order.id)
    return {
        "account_id": account.id,
        "account_name": account_name,
        "opportunity_id": opportunity.id,
        "contract_id": contract.id,
        "order_id": order.id,
        "order_number": order.fields["OrderNumber"],
        "currency": currency,
        "amount": str(Decimal(str(order.fields.get("TotalAmount") or 0)).quantize(Decimal("0.01"))),
        "lines": [{"sku": l["sku"], "quantity": str(l["quantity"]), "unit_price": str(l["unit_price"])} for l in lines],
        "fail": fail,
    }


def _original_order(order_id: str | None = None, contract_id: str | None = None) -> tuple[SRecord, SRecord]:
    if order_id:
        order = SRecord.objects.get(pk=schema.normalise_id(order_id), sobject="Order")
        contract = SRecord.objects.get(pk=order.fields["ContractId"])
    else:
        contract = SRecord.objects.get(pk=schema.normalise_id(contract_id), sobject="Contract")
        order = SRecord.objects.get(pk=contract.fields["SBQQ__Order__c"])
    return order, contract


def amend_order(order_id: str | None = None, contract_id: str | None = None, changes: list[dict] | None = None, effective_date: str | None = None) -> dict:
    """A CPQ amendment: a new Order (Type 'Amendment') on the same contract whose products carry
    the quantity *deltas* (negative to reduce). changes: [{"sku", "quantity_delta", "unit_price"?}];
    by default adds 5 seats to the first recurring line. The hub maps it to subscription.amended.v1."""
    order, contract = _original_order(order_id, contract_id)
    items = [r for r in SRecord.objects.filter(sobject="OrderItem", is_deleted=False, fields__OrderId=order.id)]
    if not changes:
        first = items[0]
        sku = SRecord.objects.get(pk=first.fields["Product2Id"]).fields["ProductCode"]
        changes = [{"sku": sku, "quantity_delta": 5, "unit_price": first.fields["UnitPrice"]}]
    prices = {SRecord.objects.get(pk=i.fields["Product2Id"]).fields["ProductCode"]: i.fields["UnitPrice"] for i in items}
    effective = effective_date or (timezone.now().date() + timedelta(days=1)).isoformat()
    with transaction.atomic(using=DB):
        ctx = store.ui_ctx()
        amendment = store.create(
            ctx,
            _obj("Order"),
            {
                "AccountId": order.fields["AccountId"],
                "ContractId": contract.id,
                "EffectiveDate": effective,
                "Status": "Draft",
                "Type": "Amendment",
                "CurrencyIsoCode": order.fields.get("CurrencyIsoCode"),
                "Legal_Entity__c": order.fields.get("Legal_Entity__c"),
                "Q2C_Status__c": "Pending",
            },
        )
        for change in changes:
            product = _product(change["sku"], ctx)
            store.create(
                ctx,
                _obj("OrderItem"),
                {
                    "OrderId": amendment.id,
                    "Product2Id": product.id,
                    "Quantity": change["quantity_delta"],
                    "UnitPrice": str(change.get("unit_price") or prices.get(change["sku"]) or "0"),
                    "ServiceDate": effective,
                },
            )
    amendment = SRecord.objects.get(pk=amendment.id)
    return {
        "order_id": amendment.id,
        "order_number": amendment.fields["OrderNumber"],
        "original_order_id": order.id,
        "original_order_number": order.fields["OrderNumber"],
        "contract_id": contract.id,
        "changes": changes,
    }


def renew_contract(contract_id: str | None = None, order_id: str | None = None, term_months: int = 12) -> dict:
    """A CPQ renewal: a renewal Opportunity (Closed Won, SBQQ__RenewedContract__c) and an Order
    (Type 'Renewal') starting the day after the contract ends, copying its recurring products;
    the contract term is extended. The hub maps it to subscription.renewed.v1."""
    order, contract = _original_order(order_id, contract_id)
    end = date.fromisoformat(contract.fields["EndDate"])
    start = end + timedelta(days=1)
    items = [r for r in SRecord.objects.filter(sobject="OrderItem", is_deleted=False, fields__OrderId=order.id)]
    with transaction.atomic(using=DB):
        ctx = store.ui_ctx()
        opportunity = store.create(
            ctx,
            _obj("Opportunity"),
            {
                "Name": f"Renewal of contract {contract.fields['ContractNumber']}",
                "AccountId": contract.fields["AccountId"],
                "StageName": "Closed Won",
                "CloseDate": timezone.now().date().isoformat(),
                "Type": "Renewal",
                "CurrencyIsoCode": contract.fields.get("CurrencyIsoCode"),
                "SBQQ__RenewedContract__c": contract.id,
            },
        )
        renewal = store.create(
            ctx,
            _obj("Order"),
            {
                "AccountId": contract.fields["AccountId"],
                "ContractId": contract.id,
                "OpportunityId": opportunity.id,
                "EffectiveDate": start.isoformat(),
                "EndDate": (store._add_months(start, term_months) - timedelta(days=1)).isoformat(),
                "Status": "Draft",
                "Type": "Renewal",
                "CurrencyIsoCode": order.fields.get("CurrencyIsoCode"),
                "Legal_Entity__c": order.fields.get("Legal_Entity__c"),
                "Q2C_Status__c": "Pending",
            },
        )
        for item in items:
            product = SRecord.objects.get(pk=item.fields["Product2Id"])
            if product.fields.get("SBQQ__ChargeType__c") == "One-Time":
                continue
            store.create(
                ctx,
                _obj("OrderItem"),
                {
                    "OrderId": renewal.id,
                    "Product2Id": product.id,
                    "Quantity": item.fields["Quantity"],
                    "UnitPrice": str(item.fields["UnitPrice"]),
                    "ServiceDate": start.isoformat(),
                },
            )
        store.update(ctx, _obj("Contract"), SRecord.objects.get(pk=contract.id), {"ContractTerm": int(contract.fields["ContractTerm"] or 0) + term_months})
    renewal = SRecord.objects.get(pk=renewal.id)
    return {
        "order_id": renewal.id,
        "order_number": renewal.fields["OrderNumber"],
        "original_order_number": order.fields["OrderNumber"],
        "contract_id": contract.id,
        "opportunity_id": opportunity.id,
        "term_months": term_months,
    }


def cancel_contract(contract_id: str | None = None, order_id: str | None = None, reason: str = "Customer cancelled") -> dict:
    """The customer cancels: the Contract goes to Status 'Terminated' (→ subscription.cancelled.v1)."""
    order, contract = _original_order(order_id, contract_id)
    with transaction.atomic(using=DB):
        store.update(store.ui_ctx(), _obj("Contract"), SRecord.objects.get(pk=contract.id), {"Status": "Terminated", "Description": reason})
    return {"contract_id": contract.id, "order_number": order.fields["OrderNumber"], "reason": reason}


# --- the relay --------------------------------------------------------------------------------
def sign(body: bytes, secret: str | None = None, timestamp: int | None = None) -> str:
    """X-Q2C-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)> (the hub refuses it 300 s later)."""
    secret = secret if secret is not None else settings.CONNECTORS["salesforce"]["webhook_secret"]
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def relay_pending_events(max_events: int = 100, url: str | None = None, timeout: float = 10.0, *, newest_first: bool = False) -> int:
    """POST due pending change events (oldest first, or newest first to test out-of-order arrival)
    to the hub; returns how many were delivered.

    Claiming is a short transaction that leases the rows (next_attempt_at = now + lease), so two
    relays never send the same batch at once; the HTTP call happens after it has committed.
    A failed delivery keeps the events pending with attempts + 1 and an exponential backoff.
    """
    url = url or os.environ.get("SALESFORCE_SANDBOX_RELAY_URL", DEFAULT_RELAY_URL)
    now = timezone.now()
    lease = now + timedelta(seconds=max(30, timeout * 3))
    with transaction.atomic(using=DB):
        due = list(
            ChangeEvent.objects.select_for_update(skip_locked=True)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), status=ChangeEvent.PENDING)
            .order_by("-replay_id" if newest_first else "replay_id")[:max_events]
        )
        ChangeEvent.objects.filter(pk__in=[e.pk for e in due]).update(next_attempt_at=lease)
    if not due:
        return 0
    body = json.dumps({"events": [e.message for e in due]}, separators=(",", ":")).encode()
    error = ""
    try:
        response = requests.post(url, data=body, headers={"Content-Type": "application/json", "X-Q2C-Signature": sign(body)}, timeout=timeout)
        if not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code}: {response.text[:300]}"
    except requests.RequestException as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
    ids = [e.pk for e in due]
    if not error:
        ChangeEvent.objects.filter(pk__in=ids).update(status=ChangeEvent.DELIVERED, delivered_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
        return len(ids)
    for event in due:
        delay = min(2**event.attempts * 5, 3600)  # 5 s, 10 s, 20 s … capped at an hour
        ChangeEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1, last_error=error, next_attempt_at=timezone.now() + timedelta(seconds=delay))
    return 0


# --- auth helpers for tests and the demo ---------------------------------------------------------
def expire_tokens() -> int:
    """End every session (as if they timed out): the next API call gets 401 INVALID_SESSION_ID."""
    return AccessToken.objects.filter(expires_at__gt=timezone.now()).update(expires_at=timezone.now() - timedelta(seconds=1))


def register_connected_app(consumer_key: str, certificate_pem: str = "", consumer_secret: str = "", run_as_user_id: str = schema.INTEGRATION_USER_ID) -> dict:
    """Register (or update) a connected app: its secret and/or the certificate for JWT bearer."""
    app, _ = ConnectedApp.objects.get_or_create(consumer_key=consumer_key, defaults={"run_as_user_id": run_as_user_id})
    if certificate_pem:
        app.certificate_pem = certificate_pem
    if consumer_secret:
        app.consumer_secret = consumer_secret
    app.save()
    return {"consumer_key": app.consumer_key, "has_certificate": bool(app.certificate_pem)}
