"""What a flow (saga) is: an ordered list of idempotent steps, each with its compensation.

A flow module defines one `Flow` object:

    FLOW = Flow(
        flow_type=FlowType.INVOICE_POSTING,
        event_types=("invoice.finalized.v1",),
        business_key=lambda data: data["invoice_number"],
        steps=[Step("map_invoice", "hub", map_invoice), Step("erp_invoice", "erp", post_invoice), …],
        prepare=prepare,            # sets document number, amount, business timestamps on the run
        on_complete=on_complete,    # optional: extra timestamps / outbox messages at completion
    )

A step function takes a `StepContext` and returns a dict (the response summary, also merged
into the run's context under the step's name). It raises ConnectorError to fail (the engine
retries transient classes by the step's RetryPolicy, dead-letters the rest) or `Park` to wait
for a prerequisite. A step that needs another schedule says so: `Step(…, retry=RetryPolicy(…))`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from q2c_portal.celery import Queue
from sync.canonical.contracts import upcast_data
from sync.models import FlowRun, FlowStep
from sync.retry import RetryPolicy, policy_for


class Park(Exception):
    """The flow cannot go on yet (e.g. an amendment before its order is activated).

    `waits_for` names what it waits on ("order:ORD-1042"); completing that resumes it.
    """

    def __init__(self, reason: str, waits_for: str):
        super().__init__(reason)
        self.reason = reason
        self.waits_for = waits_for


class ReviewPark(Park):
    """Park until a person decides a customer match (merge or keep separate).

    The runner opens the review exception (duplicate/conflict, with `message`) when the match
    has none yet; flows that meet the same open match later just wait on it too."""

    def __init__(self, reason: str, waits_for: str, *, match_id: int, error_class: str, message: str, open_exception: bool, payload: dict):
        super().__init__(reason, waits_for)
        self.match_id = match_id
        self.error_class = error_class
        self.message = message
        self.open_exception = open_exception
        self.payload = payload


class StepValidationError(Exception):
    """The hub itself refuses the data (validation/mapping), before calling any system."""

    def __init__(self, error_class: str, message: str, field: str = ""):
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.field = field


@dataclass
class StepContext:
    run: FlowRun
    step: FlowStep

    @property
    def data(self) -> dict:
        """The canonical event data the flow was started with (with any approved payload edit applied),
        as its event type's current version: a run stored before that version existed is upcast here."""
        event = self.run.context["event"]
        overrides = (self.run.context.get("payload_overrides") or {}).get(self.step.name)
        return upcast_data(event.get("type", ""), overrides if overrides is not None else event["data"])

    @property
    def state(self) -> dict:
        """What earlier steps produced, by step name."""
        return self.run.context.setdefault("steps", {})

    @property
    def idempotency_key(self) -> str:
        return self.step.idempotency_key

    def request(self, summary: dict) -> None:
        """Note what is being sent (secrets never included) for the trace and the exception queue."""
        self.step.request_summary = summary


@dataclass(frozen=True)
class Step:
    name: str
    role: str  # "hub", "crm", "billing", "erp" — resolved to a system at run time
    run: Callable[[StepContext], dict]
    compensate: Callable[[StepContext], dict] | None = None
    compensation_label: str = ""
    retry: RetryPolicy | None = None  # None: the default policy of the system the role resolves to
    # a status write-back to the CRM: when it alone fails, no money is out of place — the CRM's
    # record is out of date (docs/MONEY.md: no revenue at risk, counted under "records out of date")
    writeback: bool = False

    def retry_policy(self, system: str) -> RetryPolicy:
        """How the engine retries this step when it talks to `system`."""
        return self.retry if self.retry is not None else policy_for(system)


@dataclass(frozen=True)
class Flow:
    flow_type: str
    event_types: tuple[str, ...]
    business_key: Callable[[dict], str]
    steps: list[Step]
    prepare: Callable[[FlowRun, dict], None]
    on_complete: Callable[[FlowRun, datetime], None] | None = None
    queue: Queue = Queue.FLOWS
    description: str = ""
    # what completing this flow satisfies, e.g. ["order:ORD-1042"]: parked flows waiting on it resume
    provides: Callable[[dict], list[str]] = field(default=lambda data: [])
    # the deal (the CRM order key) the flow belongs to, from its event data and the canonical objects
    # it links to; "" while not known yet (asked again after each step until found) — see flows/deals.py
    deal_of: Callable[[FlowRun, dict], str] = field(default=lambda run, data: "")
