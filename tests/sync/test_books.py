"""The books test (issue 11, "every figure on screen is true").

Thirty-two deals across three legal entities and three currencies go through the real entry
points against the three sandboxes with a real worker: reps close them in the Salesforce sandbox
(its relay posts signed change events to the hub), the Stripe sandbox bills and collects (signed
webhooks), a bank feed posts payments and a billing relay an invoice through the events API.
The scenario has one-time fees, monthly and annual plans, an upgrade, a failed downgrade, a
cancellation, a renewal, a partial payment, an under-payment, an overpayment, a payment the ERP
refuses, an invoice the ERP refuses, one finalized in the closing month and left unposted, and
an account whose CRM write-backs all fail.

Every money figure of the KPI API, the Overview and the Invoices page is then worked out again
here in plain Python from the scenario's own inputs (the catalogue's charge types, the lines,
the rates, what was paid) — not from the product's tables — and must be exactly equal.
"""

from __future__ import annotations

import os
import uuid
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token

from sync.models import CurrencyRate, FlowRun, FlowType, Invoice, SyncException

from .conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CENT = Decimal("0.01")
# how each SKU bills, as the scenario's catalogue says (not read from the product)
CHARGES = {
    "PLAT-SEAT": ("recurring", 12),  # monthly: 12 times a year
    "PLAT-API": ("recurring", 12),
    "SUPPORT-PREM": ("recurring", 12),
    "PLAT-ENT": ("recurring", 1),  # annual
    "ONBOARD-FEE": ("one_time", 0),
}
PRICES = {"PLAT-SEAT": "45.00", "PLAT-API": "500.00", "SUPPORT-PREM": "900.00", "PLAT-ENT": "24000.00", "ONBOARD-FEE": "2500.00"}
# the reporting rate of the day: EUR has a new rate from today, GBP one from tomorrow (not valid yet)
RATES = {"USD": Decimal("1"), "EUR": Decimal("1.10"), "GBP": Decimal("1.27")}
ENTITY = {"USD": "US01", "EUR": "DE01", "GBP": "UK01"}


def build_deals() -> list[dict]:
    """32 deals: the currency rotates, the lines follow a fixed pattern (monthly seats always;
    API access, support, the annual plan and the one-time onboarding fee on some)."""
    deals = []
    for i in range(32):
        currency = ("USD", "EUR", "GBP")[i % 3]
        lines = [("PLAT-SEAT", 5 + (i * 7) % 40)]
        if i % 2 == 0:
            lines.append(("ONBOARD-FEE", 1))
        if i % 3 == 1:
            lines.append(("PLAT-API", 1 + i % 2))
        if i % 4 == 3:
            lines.append(("SUPPORT-PREM", 1))
        if i % 5 == 0:
            lines.append(("PLAT-ENT", 1))
        deals.append({"i": i, "currency": currency, "lines": lines, "account": f"Books {i:02d} {uuid.uuid4().hex[:4].upper()}"})
    return deals


# roles in the scenario (deal indexes)
X_UNPOSTED, F_WRITEBACK, P_PARTIAL, Q_UNDER, O_OVER, U_UNAPPLIED, A_UPGRADE, B_DOWNGRADE, R_RENEWAL, N_NOVEMBER = 3, 5, 7, 8, 10, 11, 12, 14, 16, 19


def line_value(sku: str, qty: int) -> Decimal:
    return Decimal(PRICES[sku]) * qty


def deal_arr(lines) -> Decimal:
    return sum((line_value(s, q) * CHARGES[s][1] for s, q in lines if CHARGES[s][0] == "recurring"), Decimal(0))


def first_invoice_total(lines) -> Decimal:
    """Stripe bills every recurring item's first period and the one-time items on the first invoice."""
    return sum((line_value(s, q) for s, q in lines), Decimal(0))


def reporting(amount: Decimal, currency: str) -> Decimal:
    return amount * RATES[currency]


def cents(value: Decimal) -> str:
    return str(value.quantize(CENT, ROUND_HALF_UP))


def shown(value: Decimal | str, currency: str = "USD") -> str:
    return f"{currency} {Decimal(value):,.2f}"


def closing_month_of(today: date) -> date:
    """The previous month during the first five business days (Mon–Fri; no holidays here), else this one."""
    first, day, seen = today.replace(day=1), today.replace(day=1), 0
    while True:
        if day.weekday() < 5:
            seen += 1
            if seen == 5:
                break
        day += timedelta(days=1)
    return (first - timedelta(days=1)).replace(day=1) if today <= day else first


@pytest.fixture
def books_reference(db):
    call_command("seed_reference_data", stdout=open(os.devnull, "w"))
    from sandboxes.netsuite.seed import seed_catalog

    seed_catalog()
    today = timezone.localdate()
    CurrencyRate.objects.create(currency="EUR", rate_to_reporting=Decimal("1.10"), valid_from=today)
    CurrencyRate.objects.create(currency="GBP", rate_to_reporting=Decimal("9.99"), valid_from=today + timedelta(days=1))


def test_every_money_figure_on_the_api_overview_and_invoices_is_the_books(stack, books_reference, live_server, client, executive):
    from django.db import transaction

    from sandboxes.db import DB
    from sandboxes.salesforce import simulate as sf
    from sandboxes.stripe import billing as stripe_billing
    from sandboxes.stripe import simulate as stripe_sim
    from sandboxes.stripe.models import StripeObject
    from sync.tasks import publish_outbox

    stack.start_worker()
    relay_url = f"{live_server.url}/api/v1/webhooks/salesforce/"
    stripe_url = f"{live_server.url}/api/v1/webhooks/stripe/"
    # one test relay for the bank feed's payments and a biller's invoices (scopes: sync/scopes.py)
    call_command(
        "issue_token",
        "bank-feed",
        "--scope",
        "payments",
        "--source",
        "bank-feed",
        "--source",
        "billing-relay",
        "--event-type",
        "invoice.finalized.v1",
        stdout=open(os.devnull, "w"),
    )
    token = Token.objects.get(user__username="bank-feed").key

    def post_event(envelope: dict) -> None:
        response = requests.post(f"{live_server.url}/api/v1/events/", json=envelope, headers={"Authorization": f"Token {token}"}, timeout=20)
        assert response.status_code == 202, response.text

    def settled(flow_type: str, n: int, timeout: float = 300, *, billing_events: bool = True):
        def done():
            sf.relay_pending_events(max_events=500, url=relay_url)
            if billing_events:  # held back while orders activate, so invoices wait for the ERP fault below
                stripe_sim.deliver_pending_webhooks(max_events=500, url=stripe_url)
            finished = FlowRun.objects.filter(flow_type=flow_type, status__in=["completed", "failed"]).count()
            return finished >= n

        wait_for(done, timeout=timeout, interval=1, message=f"{n} {flow_type} flows did not finish")

    # --- 1. the reps close 32 deals in Salesforce (one account's write-backs all fail) ----------------
    deals = build_deals()
    for deal in deals:
        result = sf.close_won_deal(
            account_name=deal["account"],
            lines=[{"sku": s, "quantity": q, "unit_price": PRICES[s]} for s, q in deal["lines"]],
            currency=deal["currency"],
            fail=deal["i"] == F_WRITEBACK,
        )
        deal.update(order_id=result["order_id"], order_number=result["order_number"])
    settled(FlowType.ORDER_ACTIVATION, len(deals), billing_events=False)
    runs = {r.document_number: r for r in FlowRun.objects.filter(flow_type=FlowType.ORDER_ACTIVATION)}
    assert {runs[d["order_number"]].status for d in deals} == {"completed"}, [
        (n, list(r.steps.values_list("name", "status", "error_message"))) for n, r in runs.items() if r.status != "completed"
    ]

    # --- 2. Stripe's first invoices reach the hub; the ERP refuses one -----------------------------------
    stripe_invoice = {}
    for row in StripeObject.objects.filter(object="invoice"):
        number = ((row.data.get("parent") or {}).get("subscription_details") or {}).get("metadata", {}).get("order_number")
        stripe_invoice[number] = row.data
    for deal in deals:
        deal["invoice"] = stripe_invoice[deal["order_number"]]
        assert Decimal(deal["invoice"]["total"]) / 100 == first_invoice_total(deal["lines"])  # the sandbox bills as the books say
    x = deals[X_UNPOSTED]
    stack.sandboxes["netsuite"].faults(fail_records=[x["invoice"]["number"]])
    settled(FlowType.INVOICE_POSTING, len(deals))
    assert FlowRun.objects.get(flow_type=FlowType.INVOICE_POSTING, document_number=x["invoice"]["number"]).status == "failed"

    # --- 3. payments: Stripe collects most; a bank feed pays one part, one short, one too much -----------
    u = deals[U_UNAPPLIED]
    stack.sandboxes["netsuite"].faults(fail_records=[x["invoice"]["number"], f"PAY-{u['invoice']['id']}-paid"])
    stripe_paid = [d for d in deals if d["i"] not in (X_UNPOSTED, F_WRITEBACK, P_PARTIAL, Q_UNDER, O_OVER)]
    for deal in stripe_paid:
        with transaction.atomic(using=DB):
            stripe_billing.settle_invoice(deal["invoice"]["id"], succeed=True)
    bank = {P_PARTIAL: Decimal("1.00"), Q_UNDER: first_invoice_total(deals[Q_UNDER]["lines"]) - Decimal("2.00")}
    bank[O_OVER] = first_invoice_total(deals[O_OVER]["lines"]) + Decimal("50.00")
    for i, amount in bank.items():
        deal = deals[i]
        post_event(
            {
                "id": f"bank-{deal['invoice']['number']}",
                "type": "payment.received.v1",
                "source": "bank-feed",
                "occurred_at": timezone.now().isoformat(),
                "data": {
                    "payment_id": f"wire-{deal['invoice']['number']}",
                    "invoice_number": deal["invoice"]["number"],
                    "amount": str(amount),
                    "currency": deal["currency"],
                    "received_at": timezone.now().isoformat(),
                },
            }
        )
    settled(FlowType.PAYMENT_STATUS, len(stripe_paid) + len(bank))

    # --- 4. an upgrade, a downgrade the ERP refuses, a renewal, a cancellation ----------------------------
    a, b, r, f = deals[A_UPGRADE], deals[B_DOWNGRADE], deals[R_RENEWAL], deals[F_WRITEBACK]
    upgrade = sf.amend_order(order_id=a["order_id"], changes=[{"sku": "PLAT-SEAT", "quantity_delta": 10}])
    downgrade = sf.amend_order(order_id=b["order_id"], changes=[{"sku": "PLAT-SEAT", "quantity_delta": -5}])
    stack.sandboxes["netsuite"].faults(fail_records=[x["invoice"]["number"], f"PAY-{u['invoice']['id']}-paid", f"CO-{downgrade['order_number']}"])
    settled(FlowType.AMENDMENT, 2)
    assert FlowRun.objects.get(flow_type=FlowType.AMENDMENT, document_number=upgrade["order_number"]).status == "completed"
    assert FlowRun.objects.get(flow_type=FlowType.AMENDMENT, document_number=downgrade["order_number"]).status == "failed"
    sf.renew_contract(order_id=r["order_id"])
    sf.cancel_contract(order_id=f["order_id"])
    settled(FlowType.RENEWAL, 1)
    settled(FlowType.CANCELLATION, 1)

    # --- 5. an invoice finalized in the closing month, refused by the ERP: unposted at month end ------------
    tz = timezone.get_current_timezone()
    now = timezone.now()
    month = closing_month_of(now.astimezone(tz).date())
    november_at = min(datetime.combine(month, datetime.min.time(), tzinfo=tz) + timedelta(hours=1), now - timedelta(minutes=1))
    n = deals[N_NOVEMBER]
    n_total = Decimal("777.00")
    nov_number = f"INV-CLOSE-{uuid.uuid4().hex[:6].upper()}"
    stack.sandboxes["netsuite"].faults(fail_records=[x["invoice"]["number"], f"PAY-{u['invoice']['id']}-paid", f"CO-{downgrade['order_number']}", nov_number])
    post_event(
        {
            "id": f"billing-{nov_number}",
            "type": "invoice.finalized.v1",
            "source": "billing-relay",
            "occurred_at": november_at.isoformat(),
            "data": {
                "invoice_number": nov_number,
                "order_number": n["order_number"],
                "billing_customer_id": n["invoice"]["customer"],
                "currency": n["currency"],
                "subtotal": str(n_total),
                "tax": "0.00",
                "total": str(n_total),
                "finalized_at": november_at.isoformat(),
                "lines": [
                    {
                        "sku": "PLAT-SEAT",
                        "description": "Seats (true-up)",
                        "quantity": "1",
                        "unit_amount": str(n_total),
                        "amount": str(n_total),
                        "charge_type": "recurring",
                    }
                ],
            },
        }
    )
    settled(FlowType.INVOICE_POSTING, len(deals) + 1)

    # --- 6. the CRM write-backs go out (the failing account's are refused) ------------------------------------
    def outbox_drained():
        publish_outbox.run()
        from sync.models import OutboxMessage

        return not OutboxMessage.objects.filter(published_at__isnull=True, failed_at__isnull=True).exists()

    wait_for(outbox_drained, timeout=120, interval=1, message="write-backs not published")

    # =========================== the books, in plain Python ===========================================
    active = [d for d in deals if d["i"] != F_WRITEBACK]
    arr_by_deal = {d["i"]: deal_arr(d["lines"]) for d in deals}
    arr_by_deal[A_UPGRADE] += Decimal("45.00") * 10 * 12  # the upgrade completed; the failed downgrade did not apply
    expected_arr = sum((reporting(arr_by_deal[d["i"]], d["currency"]) for d in active), Decimal(0))
    totals = {d["i"]: first_invoice_total(d["lines"]) for d in deals}
    one_time = sum((reporting(line_value(s, q), d["currency"]) for d in deals for s, q in d["lines"] if CHARGES[s][0] == "one_time"), Decimal(0))

    downgrade_at_risk = reporting(Decimal("45.00") * 5 * 12, b["currency"])  # |ARR change|: the over-billing
    x_remaining = reporting(totals[X_UNPOSTED], x["currency"])
    nov_remaining = reporting(n_total, n["currency"])
    u_payment = reporting(totals[U_UNAPPLIED], u["currency"])
    expected_risk = downgrade_at_risk + x_remaining + nov_remaining + u_payment
    expected_stuck_invoices = x_remaining + nov_remaining  # invoices finalized and not posted (nothing paid on them)
    # the failing account: its customer sync, activation, first invoice and cancellation wrote back in vain
    expected_out_of_date = 4

    paid_in_full = [d for d in deals if d["i"] not in (X_UNPOSTED, F_WRITEBACK, P_PARTIAL, Q_UNDER, O_OVER)]
    open_invoices = [(totals[X_UNPOSTED], x["currency"]), (totals[F_WRITEBACK], f["currency"]), (n_total, n["currency"])]
    partial = [(totals[P_PARTIAL] - bank[P_PARTIAL], deals[P_PARTIAL]["currency"]), (Decimal("2.00"), deals[Q_UNDER]["currency"])]
    credit = reporting(Decimal("50.00"), deals[O_OVER]["currency"])
    open_remaining = sum((reporting(a_, c) for a_, c in open_invoices), Decimal(0))
    partial_remaining = sum((reporting(a_, c) for a_, c in partial), Decimal(0))

    in_window = month != now.astimezone(tz).date().replace(day=1)  # the previous month is closing
    close_unposted = [nov_remaining] + ([] if in_window else [x_remaining])
    close_unapplied = [] if in_window else [u_payment]

    # =========================== what the product says ===================================================
    client.force_login(executive)
    kpis = client.get("/api/v1/kpis/").json()
    assert kpis["revenue_at_risk"] == {"currency": "USD", "amount": cents(expected_risk)}
    assert kpis["records_out_of_date"] == expected_out_of_date
    assert kpis["dollars_in_flight"] == {
        "currency": "USD",
        "amount": cents(expected_stuck_invoices),
        "orders": 0,
        "orders_amount": "0.00",
        "invoices": 2,
        "invoices_amount": cents(expected_stuck_invoices),
    }
    assert f'data-figure="one-time-billed">{shown(cents(one_time))}<' in client.get("/").content.decode()
    assert kpis["arr"] == {
        "currency": "USD",
        "amount": cents(expected_arr),
        "subscriptions": len(active),
        "one_time_billed": cents(one_time),
        "usage_billed": "0.00",
    }
    assert kpis["unbilled_arr"] == {"currency": "USD", "amount": "0.00", "subscriptions": 0}  # every live subscription is invoiced
    payments = kpis["payments"]
    assert payments["paid"] == {"invoices": len(paid_in_full), "remaining": "0.00", "credit_balance": "0.00"}
    assert payments["partially_paid"] == {"invoices": 2, "remaining": cents(partial_remaining), "credit_balance": "0.00"}
    assert payments["overpaid"] == {"invoices": 1, "remaining": "0.00", "credit_balance": cents(credit)}
    assert payments["open"] == {"invoices": 3, "remaining": cents(open_remaining), "credit_balance": "0.00"}
    assert payments["receivable"] == cents(open_remaining + partial_remaining)
    close = kpis["close_readiness"]
    assert close["label"] == month.strftime("%B %Y") and close["ready"] is False
    assert (close["unposted"], close["unposted_amount"]) == (len(close_unposted), cents(sum(close_unposted, Decimal(0))))
    assert (close["unapplied_payments"], close["unapplied_amount"]) == (len(close_unapplied), cents(sum(close_unapplied, Decimal(0))))
    assert close["open_breaks"] == 0

    # every invoice of a live subscription is linked to it (issue 11: they never were)
    assert not Invoice.objects.filter(subscription__isnull=True).exists()
    # no negative risk anywhere in the queue
    assert not SyncException.objects.filter(revenue_at_risk__lt=0).exists()

    overview = client.get("/").content.decode()
    assert f'data-figure="revenue-at-risk">{shown(cents(expected_risk))}<' in overview
    assert f"{expected_out_of_date} records out of date" in overview
    assert f'data-figure="in-flight">{shown(cents(expected_stuck_invoices))}<' in overview
    assert f'data-figure="arr">{shown(cents(expected_arr))}<' in overview
    assert f'data-figure="unbilled-arr">{shown("0")}<' in overview
    assert f"{len(close_unposted)} unposted invoice" in overview and "Not ready" in overview

    invoices_page = client.get("/invoices/").content.decode()
    assert f'data-figure="partially-paid-remaining">{shown(cents(partial_remaining))}<' in invoices_page
    assert f'data-figure="credit-balance">{shown(cents(credit))}<' in invoices_page
    assert f'data-figure="open-remaining">{shown(cents(open_remaining))}<' in invoices_page
    assert f'data-figure="receivable">{shown(cents(open_remaining + partial_remaining))}<' in invoices_page
    assert f'data-figure="paid-invoices">{len(paid_in_full)}<' in invoices_page
    # the partially paid invoice's own row says what remains, in its own currency
    p = deals[P_PARTIAL]
    row = (
        client.get("/invoices/", {"invoice": p["invoice"]["number"]})
        .content.decode()
        .split(f'data-invoice="{p["invoice"]["number"]}"', 1)[1]
        .split("</tr>", 1)[0]
    )
    assert "partially paid" in row and shown(totals[P_PARTIAL] - Decimal("1.00"), p["currency"]) in row

    # =========================== the deal pages ==============================================================
    # one deal id on every flow of a deal: the order, its invoices, payments, amendments, renewal, cancellation
    assert not FlowRun.objects.exclude(flow_type=FlowType.CUSTOMER_SYNC).filter(deal_id="").exists(), list(
        FlowRun.objects.exclude(flow_type=FlowType.CUSTOMER_SYNC).filter(deal_id="").values_list("flow_type", "document_number")
    )
    for deal in deals:
        number = deal["order_number"]
        assert FlowRun.objects.get(flow_type=FlowType.INVOICE_POSTING, document_number=deal["invoice"]["number"]).deal_id == number
    assert FlowRun.objects.get(flow_type=FlowType.AMENDMENT, document_number=upgrade["order_number"]).deal_id == a["order_number"]
    assert FlowRun.objects.get(flow_type=FlowType.AMENDMENT, document_number=downgrade["order_number"]).deal_id == b["order_number"]
    assert FlowRun.objects.get(flow_type=FlowType.RENEWAL).deal_id == r["order_number"]
    assert FlowRun.objects.get(flow_type=FlowType.CANCELLATION).deal_id == f["order_number"]
    assert FlowRun.objects.get(flow_type=FlowType.INVOICE_POSTING, document_number=nov_number).deal_id == n["order_number"]
    for i in bank:
        assert FlowRun.objects.filter(flow_type=FlowType.PAYMENT_STATUS, deal_id=deals[i]["order_number"]).count() == 1

    def contract_value(lines) -> Decimal:  # first-year value: recurring ARR + one-time fees
        return deal_arr(lines) + sum((line_value(s, q_) for s, q_ in lines if CHARGES[s][0] == "one_time"), Decimal(0))

    paid = {d["i"]: totals[d["i"]] for d in paid_in_full}
    paid.update(bank)
    invoiced = dict(totals)
    invoiced[N_NOVEMBER] += n_total
    books = {}
    for i in (A_UPGRADE, B_DOWNGRADE, F_WRITEBACK, R_RENEWAL, P_PARTIAL, Q_UNDER, O_OVER, X_UNPOSTED, N_NOVEMBER, 0):
        deal = deals[i]
        due = invoiced[i]
        books[i] = {
            "contract-value": contract_value(deal["lines"]),
            "arr": Decimal(0) if i == F_WRITEBACK else arr_by_deal[i],  # a completed cancellation ends the ARR
            "invoiced": due,
            "paid": paid.get(i, Decimal(0)),
            "remaining": max(due - paid.get(i, Decimal(0)), Decimal(0)),
            "credit-balance": max(paid.get(i, Decimal(0)) - due, Decimal(0)),
        }
    for i, figures in books.items():
        deal = deals[i]
        page = client.get(f"/deals/{deal['order_number']}/")
        assert page.status_code == 200
        html = page.content.decode()
        for name, value in figures.items():
            assert f'data-figure="deal-{name}">{shown(cents(value), deal["currency"])}<' in html, (i, name, value)
    # the lifecycle line says what happened
    page = client.get(f"/deals/{f['order_number']}/").content.decode()
    assert 'data-stage="cancellation" data-state="done"' in page and "data-deal-stage>Cancelled<" in page
    page = client.get(f"/deals/{deals[0]['order_number']}/").content.decode()
    assert 'data-stage="first_invoice" data-state="done"' in page and 'data-stage="payment" data-state="done"' in page
    assert "data-deal-stage>Live and paid<" in page
    page = client.get(f"/deals/{p['order_number']}/").content.decode()
    assert 'data-stage="payment" data-state="now"' in page and "partially paid" in page
    page = client.get(f"/deals/{x['order_number']}/").content.decode()
    assert 'data-stage="first_invoice" data-state="failed"' in page
    page = client.get(f"/deals/{b['order_number']}/").content.decode()
    assert 'data-stage="amendment" data-state="failed"' in page
    assert f'data-figure="deal-at-risk">{shown(cents(downgrade_at_risk))}<' in page  # |ARR change| of the failed downgrade
