"""A steady, realistic stream of business events for the demo, with a few percent of failures.

Drives the sandboxes the way the real systems behave: reps close deals in Salesforce (whose
change events are relayed to the hub), CPQ amendments and renewals happen, Stripe bills
and collects (signed webhooks to the hub), usage periods close, and now and then NetSuite
has an outage or throttles. Everything reaches the hub through its real entry points.
It runs on the sandbox settings: the simulators' state in their database, and the hub's
orders (to amend, renew or close usage for) read from the product's.

    python manage.py demo_traffic --settings sandboxes.settings --interval 6
"""

from __future__ import annotations

import logging
import random
import signal
import time
import uuid
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils import timezone

log = logging.getLogger("demo.traffic")

CATALOG = [
    # sku, unit price, quantity range — how each bills (monthly, annual, one-time) is the Salesforce
    # product's charge type (sandboxes/salesforce/simulate.py CATALOGUE), never the traffic's guess
    ("PLAT-SEAT", "45.00", (5, 250)),
    ("PLAT-API", "500.00", (1, 3)),
    ("SUPPORT-PREM", "900.00", (1, 1)),
    ("ONBOARD-FEE", "2500.00", (1, 1)),  # one-time
    ("PLAT-ENT", "24000.00", (1, 1)),  # annual
]
ACCOUNTS = [
    "Globex Corporation",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Imports",
    "Soylent Foods",
    "Tyrell Systems",
    "Cyberdyne Labs",
    "Aperture Science",
    "Wonka Industries",
    "Massive Dynamic",
    "Oscorp",
    "Nakatomi Trading",
    "Pied Piper",
    "Dunder Mifflin",
    "Monarch Solutions",
    "Blue Sun Logistics",
    "Prestige Worldwide",
]
CURRENCIES = [("USD", 0.7), ("EUR", 0.2), ("GBP", 0.1)]


class Command(BaseCommand):
    help = "Generate live demo traffic through the sandboxes (Ctrl-C to stop)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=6.0, help="seconds between ticks")
        parser.add_argument("--failure-rate", type=float, default=0.04, help="share of deals that carry a problem")
        parser.add_argument("--ticks", type=int, default=0, help="stop after N ticks (0: run until stopped)")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, interval: float, failure_rate: float, ticks: int, seed, **options):
        self.rng = random.Random(seed)
        self.running = True
        signal.signal(signal.SIGTERM, lambda *a: setattr(self, "running", False))
        self.outage_until = None
        tick = 0
        self.stdout.write(f"demo traffic: a tick every {interval:.0f}s, ~{failure_rate:.0%} of deals with a problem")
        while self.running and (not ticks or tick < ticks):
            tick += 1
            close_old_connections()
            try:
                self.tick(tick, failure_rate)
            except KeyboardInterrupt:
                break
            except Exception:  # noqa: BLE001 — the demo keeps going; the hub's own screens show the fallout
                log.exception("demo tick %s failed", tick)
            time.sleep(interval)

    # --- one tick ------------------------------------------------------------------------------
    def tick(self, tick: int, failure_rate: float) -> None:
        from sandboxes.salesforce import simulate as sf
        from sandboxes.stripe import simulate as stripe

        self.close_a_deal(failure_rate)
        if tick % 4 == 0:
            self.change_a_contract()
        if tick % 5 == 0:
            self.close_usage()
        if tick % 7 == 0 and self.rng.random() < 0.5:
            stripe.issue_credit_note(rng=self.rng)
        self.weather(tick)
        stripe.advance_billing(pay_failure_rate=0.06, rng=self.rng)
        sf.relay_pending_events(max_events=200)
        stripe.deliver_pending_webhooks(max_events=200)

    def close_a_deal(self, failure_rate: float) -> None:
        from sandboxes.salesforce import simulate as sf

        currency = self.rng.choices([c for c, _ in CURRENCIES], weights=[w for _, w in CURRENCIES])[0]
        picks = self.rng.sample(CATALOG[:3], k=self.rng.randint(1, 3))
        if self.rng.random() < 0.6:
            picks.append(CATALOG[3])
        if self.rng.random() < 0.15:
            picks.append(CATALOG[4])
        lines = [{"sku": sku, "quantity": self.rng.randint(*qty), "unit_price": price} for sku, price, qty in picks]
        problem = self.rng.random() < failure_rate
        fail_crm = False
        if problem:
            kind = self.rng.choice(["unknown_sku", "crm_validation"])
            if kind == "unknown_sku":  # a hand-made product without a charge type: the hub refuses to guess how it bills
                lines.append({"sku": f"LEGACY-{self.rng.randint(10, 99)}", "quantity": 1, "unit_price": "120.00"})
            else:
                fail_crm = True
        account = f"{self.rng.choice(ACCOUNTS)} {uuid.uuid4().hex[:4].upper()}"
        deal = sf.close_won_deal(account_name=account, lines=lines, currency=currency, fail=fail_crm, term_months=self.rng.choice([12, 12, 24, 36]))
        log.info("deal closed: %s %s (%s)", deal.get("order_number"), account, currency)

    def change_a_contract(self) -> None:
        from sandboxes.salesforce import simulate as sf

        order = self.live_order()
        if order is None:
            return
        from sync.canonical.store import ref_external

        crm_order = ref_external(system="salesforce", object_type="Order", canonical_type="order", canonical_id=order.pk)
        if not crm_order:
            return
        roll = self.rng.random()
        if roll < 0.7:
            sf.amend_order(order_id=crm_order, changes=[{"sku": "PLAT-SEAT", "quantity_delta": self.rng.choice([5, 10, 20, -5])}])
        elif roll < 0.9:
            sf.renew_contract(order_id=crm_order)
        else:
            sf.cancel_contract(order_id=crm_order)

    def close_usage(self) -> None:
        from sync.engine.inbox import accept_canonical

        order = self.live_order()
        if order is None:
            return
        end = timezone.now().replace(minute=0, second=0, microsecond=0)
        accept_canonical(
            [
                {
                    "id": f"usage-{order.number}-{end.isoformat()}",
                    "type": "usage.closed.v1",
                    "source": "metering",
                    "occurred_at": timezone.now().isoformat(),
                    "data": {
                        "order_number": order.number,
                        "metric": "api_calls",
                        "quantity": str(self.rng.randint(1_000, 250_000)),
                        "period_start": (end - timedelta(hours=1)).isoformat(),
                        "period_end": end.isoformat(),
                        "records": self.rng.randint(50, 5000),
                    },
                }
            ]
        )

    def live_order(self):
        """A random activated order that really exists in the sandboxes (not loaded history)."""
        from django.db.models import Exists, OuterRef

        from sync.models import ExternalRef, Order

        in_crm = ExternalRef.objects.filter(system="salesforce", object_type="Order", canonical_type="order", canonical_id=OuterRef("pk"))
        recent = Order.objects.filter(status=Order.Status.ACTIVATED).filter(Exists(in_crm)).order_by("-activated_at")[:200]
        ids = list(recent.values_list("pk", flat=True))
        return Order.objects.filter(pk=self.rng.choice(ids)).first() if ids else None

    def weather(self, tick: int) -> None:
        """Now and then NetSuite has a 2-minute outage or throttles a burst: realistic bad days."""
        from sandboxes.kit.models import FaultConfig

        now = timezone.now()
        if self.outage_until and now >= self.outage_until:
            FaultConfig.objects.filter(system="netsuite").update(outage=False)
            self.outage_until = None
            log.info("NetSuite outage over")
        elif self.outage_until is None and tick % 90 == 45:
            FaultConfig.objects.update_or_create(system="netsuite", defaults={"outage": True})
            self.outage_until = now + timedelta(minutes=2)
            log.info("NetSuite outage for 2 minutes")
        elif tick % 30 == 15:
            FaultConfig.objects.update_or_create(system="stripe", defaults={"rate_limit_retry_after": 2, "rate_limit_requests": 3})
