"""The sandbox's clock and Stripe's outbound side: billing cycles, payments, credit notes,
changes made "in the Stripe Dashboard", and signed webhook delivery.

The demo drives it with a loop such as:

    from sandboxes.stripe import simulate
    while True:
        simulate.advance_billing(pay_failure_rate=0.05)      # pay open invoices, bill due periods
        simulate.deliver_pending_webhooks(max_events=200)    # POST signed events to the hub
        time.sleep(5)

`advance_billing(now=timezone.now() + timedelta(days=31))` moves every active subscription
into its next period at once (a simulated month end). Every function here runs its own
short transactions; webhook delivery is never inside one.
"""

from __future__ import annotations

import json
import logging
import os
import random
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from sandboxes.db import DB, connection
from sync.connectors.stripe import mapper

from . import billing
from .billing import AUTOMATIC, RequestInfo, new_id
from .models import SandboxEvent, StripeObject

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000/api/v1/webhooks/stripe/"
MAX_DELIVERY_ATTEMPTS = 12
CLAIM_LEASE = timedelta(seconds=60)


def webhook_url() -> str:
    return os.environ.get("STRIPE_SANDBOX_WEBHOOK_URL", DEFAULT_WEBHOOK_URL)


def _ts(now: datetime | None) -> int:
    return mapper.to_ts(now or timezone.now())


# --- billing clock -------------------------------------------------------------------------------
def advance_billing(now: datetime | None = None, pay_failure_rate: float = 0.05, *, rng: random.Random | None = None, limit: int = 500) -> list[str]:
    """One tick of Stripe's billing clock at `now` (default: real time). Returns the event ids recorded.

    1. Open invoices are charged: the first attempt at once, retries when `next_payment_attempt`
       is due; each attempt fails with probability `pay_failure_rate` (invoice.payment_failed),
       else succeeds (invoice.payment_succeeded + invoice.paid). After 4 failures the invoice
       becomes uncollectible.
    2. Active subscriptions whose period ended by `now` roll into the next period
       (customer.subscription.updated) and get their period's invoice, created and finalized
       (invoice.created, invoice.finalized) — to be paid on a later tick; or, with
       cancel_at_period_end, end (customer.subscription.deleted).
    """
    rng = rng or random.Random()
    ts = _ts(now)
    events: list[str] = []
    open_invoices = list(
        StripeObject.objects.filter(object="invoice", data__status="open")
        .order_by("seq")
        .values_list("id", "data__attempt_count", "data__next_payment_attempt")[:limit]
    )
    for invoice_id, attempts, next_attempt in open_invoices:
        if attempts and next_attempt and int(next_attempt) > ts:
            continue
        with transaction.atomic(using=DB):
            events += billing.settle_invoice(invoice_id, succeed=rng.random() >= pay_failure_rate, when=ts)
    due = list(StripeObject.objects.filter(object="subscription", data__status__in=["active", "past_due"]).order_by("seq").values_list("id", flat=True)[:limit])
    for subscription_id in due:
        with transaction.atomic(using=DB):
            row = StripeObject.objects.select_for_update(skip_locked=True).filter(object="subscription", id=subscription_id).first()
            if row is None or not row.data["items"]["data"]:
                continue
            period_end = min(item["current_period_end"] for item in row.data["items"]["data"])
            if period_end > ts:
                continue
            if row.data.get("cancel_at_period_end"):
                first = _last_seq()
                billing.cancel_subscription(subscription_id, {}, AUTOMATIC, when=period_end)
                events += _events_after(first)
                continue
            events += _roll_period(row, ts)
    return [e for e in events if e]


def _roll_period(row: StripeObject, ts: int) -> list[str]:
    data = row.data
    before = {"items": json.loads(json.dumps(data["items"]))}
    old_start = min(item["current_period_start"] for item in data["items"]["data"])
    old_end = min(item["current_period_end"] for item in data["items"]["data"])
    for item in data["items"]["data"]:
        start = item["current_period_end"]
        item["current_period_start"] = start
        item["current_period_end"] = billing._period_end(start, item["price"])
    row.data = data
    billing.save(row)
    first = _last_seq()
    billing.record_event("customer.subscription.updated", data, AUTOMATIC, before, created=ts)
    invoice = billing.create_invoice_for(row, "subscription_cycle", AUTOMATIC, period=(old_start, old_end), created=ts)
    data["latest_invoice"] = invoice["id"]
    row.data = data
    billing.save(row)
    return _events_after(first)


def _last_seq() -> int:
    return SandboxEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _events_after(seq: int) -> list[str]:
    return list(SandboxEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("id", flat=True))


def issue_credit_note(
    invoice_id: str | None = None,
    *,
    amount: int | None = None,
    share: float = 0.1,
    reason: str = "product_unsatisfactory",
    memo: str | None = None,
    rng: random.Random | None = None,
) -> dict | None:
    """Issue a credit note as a billing clerk would in the Dashboard (credit_note.created).

    `amount` in minor units; default `share` of the invoice total. Without `invoice_id`, a random
    finalized invoice with room left to credit. Returns the credit note, or None if none fits."""
    rng = rng or random.Random()
    if invoice_id is None:
        candidates = list(
            StripeObject.objects.filter(object="invoice", data__status__in=["open", "paid"], data__total__gt=0)
            .order_by("-seq")
            .values_list("id", flat=True)[:200]
        )
        if not candidates:
            return None
        invoice_id = rng.choice(candidates)
    with transaction.atomic(using=DB):
        invoice = billing.get("invoice", invoice_id, label="invoice").data
        room = invoice["total"] - invoice.get("pre_payment_credit_notes_amount", 0) - invoice.get("post_payment_credit_notes_amount", 0)
        if amount is None:
            step = 10 ** mapper.exponent(invoice["currency"])
            amount = max(step, int(invoice["total"] * share) // step * step)
        amount = min(amount, room)
        if amount <= 0:
            return None
        params = {"invoice": invoice_id, "amount": str(amount), "reason": reason}
        if memo:
            params["memo"] = memo
        return billing.create_credit_note(params, RequestInfo(new_id("req", 14), None))


def change_subscription_in_dashboard(
    subscription_id: str, *, sku: str | None = None, quantity: int | None = None, proration_behavior: str = "create_prorations"
) -> dict:
    """A change made by a person in the Stripe Dashboard (not our echo): set one item's
    quantity (default: the first item, +1). Emits customer.subscription.updated."""
    row = billing.get("subscription", subscription_id, label="subscription")
    items = row.data["items"]["data"]
    item = next((i for i in items if mapper.item_sku(i) == sku), None) if sku else items[0]
    if item is None:
        raise ValueError(f"subscription {subscription_id} has no item for {sku}")
    quantity = item["quantity"] + 1 if quantity is None else quantity
    with transaction.atomic(using=DB):
        return billing.update_subscription(
            subscription_id,
            {"items": [{"id": item["id"], "quantity": str(quantity)}], "proration_behavior": proration_behavior},
            RequestInfo(new_id("req", 14), None),
        )


def cancel_subscription_in_dashboard(subscription_id: str, *, feedback: str = "too_expensive", comment: str = "") -> dict:
    """A cancellation made in the Dashboard (customer.subscription.deleted, not our echo)."""
    with transaction.atomic(using=DB):
        return billing.cancel_subscription(
            subscription_id, {"cancellation_details": {"feedback": feedback, "comment": comment}}, RequestInfo(new_id("req", 14), None)
        )


# --- webhooks ---------------------------------------------------------------------------------------
def deliver_pending_webhooks(
    max_events: int = 100, *, url: str | None = None, secret: str | None = None, timeout: float = 10.0, newest_first: bool = False
) -> int:
    """POST due events (oldest first; newest first to test out-of-order arrival, which Stripe does
    not promise to avoid) to the webhook endpoint, signed as Stripe signs them
    (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, f"{t}.{body}")`). Returns how many the
    endpoint accepted (2xx). A failed delivery is retried later with backoff
    (5 s, 10 s, 20 s … capped at 1 h); after MAX_DELIVERY_ATTEMPTS the event is marked failed.
    Each event is claimed with compare-and-set, so concurrent deliverers never double-send."""
    if connection.in_atomic_block:
        raise RuntimeError("deliver_pending_webhooks must not run inside a transaction (it makes HTTP calls)")
    url = url or webhook_url()
    secret = secret or settings.CONNECTORS["stripe"]["webhook_secret"]
    now = timezone.now()
    due = list(
        SandboxEvent.objects.filter(delivery=SandboxEvent.Delivery.PENDING, next_attempt_at__lte=now).order_by("-seq" if newest_first else "seq")[:max_events]
    )
    delivered = 0
    session = requests.Session()
    for event in due:
        claimed = SandboxEvent.objects.filter(pk=event.pk, delivery=SandboxEvent.Delivery.PENDING, attempts=event.attempts).update(
            attempts=event.attempts + 1, next_attempt_at=now + CLAIM_LEASE
        )
        if claimed != 1:
            continue
        attempts = event.attempts + 1
        body = json.dumps({**event.data, "pending_webhooks": 1}, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": mapper.signature_header(body, secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        status, error = None, ""
        try:
            response = session.post(url, data=body, headers=headers, timeout=timeout)
            status = response.status_code
            if not 200 <= status < 300:
                error = response.text[:500]
        except requests.RequestException as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:500]
        if status is not None and 200 <= status < 300:
            SandboxEvent.objects.filter(pk=event.pk).update(
                delivery=SandboxEvent.Delivery.DELIVERED, delivered_at=timezone.now(), last_status=status, last_error=""
            )
            delivered += 1
            continue
        gave_up = attempts >= MAX_DELIVERY_ATTEMPTS
        SandboxEvent.objects.filter(pk=event.pk).update(
            delivery=SandboxEvent.Delivery.FAILED if gave_up else SandboxEvent.Delivery.PENDING,
            next_attempt_at=timezone.now() + timedelta(seconds=min(3600, 5 * 2 ** (attempts - 1))),
            last_status=status,
            last_error=error,
        )
        log.info("stripe sandbox webhook %s failed (attempt %s): %s %s", event.id, attempts, status, error[:100])
    return delivered


def webhook_backlog() -> dict:
    """Counts of events by delivery state (for the demo's status line and tests)."""
    return {row["delivery"]: row["n"] for row in SandboxEvent.objects.values("delivery").annotate(n=Count("pk"))}


def count_objects(object_type: str, **filters) -> int:
    """How many `object_type` objects the sandbox created, e.g. count_objects("subscription",
    idempotency_key="q2c-…") or count_objects("subscription", order_number="SO-1")."""
    qs = StripeObject.objects.filter(object=object_type)
    if "order_number" in filters:
        qs = qs.filter(data__metadata__order_number=filters.pop("order_number"))
    return qs.filter(**filters).count()


def event_ids_since(seq: int = 0) -> list[str]:
    return list(SandboxEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("id", flat=True))


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
