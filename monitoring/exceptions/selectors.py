"""Exception queue reads: counts, filter choices, root-cause groups, the story behind one
exception, and what a retry would do before anyone presses it. The queue itself is
filters.ExceptionFilterSet(...).qs."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Count, Max, Min, Q, QuerySet, Sum

from monitoring.models import PayloadEdit, SavedView
from q2c_portal.redaction import pretty, redact
from sync.customers.matching import customer_refs
from sync.customers.merge import compare, survivorship
from sync.flows.registry import FLOWS
from sync.models import (
    AuditEntry,
    CustomerMatch,
    ErrorClass,
    FlowRun,
    FlowStep,
    FlowType,
    InboxEvent,
    Invoice,
    Order,
    Payment,
    Subscription,
    SyncException,
    System,
)

from .filters import (
    AGE_CHOICES,
    ERROR_CLASS_CHOICES,
    RETRY_CHOICES,
    SORT_CHOICES,
    STATUS_CHOICES,
    SYSTEM_CHOICES,
    ExceptionFilterSet,
)

FINANCIAL_FLOW_TYPES = (FlowType.INVOICE_POSTING, FlowType.PAYMENT_STATUS, FlowType.CREDIT_MEMO)
EDITABLE_ERROR_CLASSES = (ErrorClass.MAPPING, ErrorClass.VALIDATION)


def exception_counts(*, user=None) -> dict:
    """Header counts over the open queue (one aggregate query + one grouped query)."""
    open_qs = SyncException.objects.filter(status__in=SyncException.OPEN_STATUSES)
    totals = open_qs.aggregate(
        open=Count("id", filter=Q(status=SyncException.Status.OPEN)),
        retrying=Count("id", filter=Q(status=SyncException.Status.RETRYING)),
        unassigned=Count("id", filter=Q(assignee__isnull=True)),
        mine=Count("id", filter=Q(assignee_id=getattr(user, "pk", None))) if user is not None else Count("id", filter=Q(pk__isnull=True)),
        at_risk=Sum("revenue_at_risk"),
    )
    by_class = list(open_qs.values("error_class").annotate(n=Count("id")).order_by("-n", "error_class"))
    labels = dict(ERROR_CLASS_CHOICES)
    return {
        **totals,
        "total": totals["open"] + totals["retrying"],
        "at_risk": totals["at_risk"] or Decimal(0),
        "by_class": [{"error_class": r["error_class"], "label": labels.get(r["error_class"], r["error_class"]), "n": r["n"]} for r in by_class],
    }


def filter_options() -> dict:
    """Choices for the filter form. Step names come from the flow definitions (no table scan)."""
    steps = sorted({s.name for f in FLOWS for s in f.steps})
    return {
        "statuses": STATUS_CHOICES,
        "error_classes": ERROR_CLASS_CHOICES,
        "systems": SYSTEM_CHOICES,
        "flow_types": FlowType.choices,
        "steps": steps,
        "ages": AGE_CHOICES,
        "retry_choices": RETRY_CHOICES,
        "sorts": SORT_CHOICES,
    }


def assignable_users() -> QuerySet:
    """Active users whose role may act on exceptions: the assignee select."""
    return (
        get_user_model()
        .objects.filter(
            is_active=True,
            groups__permissions__codename="act_on_exception",
            groups__permissions__content_type__app_label="sync",
        )
        .distinct()
        .order_by("username")
    )


# --- root-cause groups -------------------------------------------------------------------------
def cause_groups(*, filters: ExceptionFilterSet) -> QuerySet:
    """The same cause across many documents, one row per cause_key, biggest first."""
    qs = filters.qs.order_by()
    return (
        qs.values("cause_key")
        .annotate(
            count=Count("id"),
            documents=Count("document_number", distinct=True),
            at_risk=Sum("revenue_at_risk"),
            first_seen=Min("first_seen"),
            last_seen=Max("last_seen"),
            occurrences=Sum("occurrences"),
            systems=ArrayAgg("system", distinct=True),
            error_classes=ArrayAgg("error_class", distinct=True),
            flow_types=ArrayAgg("flow_type", distinct=True),
            sample_id=Min("id"),
            retryable=Count("id", filter=Q(status=SyncException.Status.OPEN, step__isnull=False)),
        )
        .order_by("-count", "-at_risk", "cause_key")
    )


def with_sample_messages(groups: list[dict]) -> list[dict]:
    """Attach one example message per group (one query for the page)."""
    samples = dict(SyncException.objects.filter(pk__in=[g["sample_id"] for g in groups]).values_list("pk", "message"))
    flow_labels = dict(FlowType.choices)
    for g in groups:
        g["message"] = samples.get(g["sample_id"], "")
        g["flow_labels"] = [flow_labels.get(f, f) for f in g["flow_types"] if f]
    return groups


# --- one exception ---------------------------------------------------------------------------------
SUGGESTIONS = {
    "auth": "Check the connector's credentials and token on the Connectors page, then retry.",
    "validation": "Fix the field the target system named (usually in the CRM record), or edit the payload, then retry.",
    "mapping": "A value has no mapping (product, price, entity). Add the mapping, fix the source record or edit the payload, then retry.",
    "not_found": "A referenced record is missing in the target system. Create or sync it first, then retry.",
    "conflict": "The target record changed or is locked. Inspect both sides, then retry or resolve.",
    "duplicate": "Two records look like the same party. Compare them below, then merge them or keep them separate; waiting flows resume by themselves.",
    "rate_limit": "The target system throttled us; retries back off automatically. Retry later if it stays open.",
    "timeout": "The target did not answer in time. Retrying is safe: the step carries its idempotency key.",
    "unavailable": "The target system is down or the connector is paused. Retry once it is healthy.",
    "reconciliation": "Systems disagree. Compare the values below, correct the wrong system, then resolve.",
    "parked": "The flow waited too long for a prerequisite (e.g. the order). Check that the prerequisite arrived.",
    "missing": "An expected event never arrived. Check the source system for the document.",
}

# what the flow was doing, in words: "posting invoice INV-1 to the ERP"
FLOW_VERBS = {
    FlowType.CUSTOMER_SYNC: "syncing customer",
    FlowType.ORDER_ACTIVATION: "activating order",
    FlowType.AMENDMENT: "amending subscription",
    FlowType.RENEWAL: "renewing contract",
    FlowType.CANCELLATION: "cancelling subscription",
    FlowType.INVOICE_POSTING: "posting invoice",
    FlowType.PAYMENT_STATUS: "recording payment for",
    FlowType.USAGE_CLOSE: "closing usage for",
    FlowType.CREDIT_MEMO: "issuing credit memo",
}


def step_input(exc: SyncException) -> dict:
    """The data the failed step works from: an applied edit, else the event's canonical data."""
    run = exc.flow_run
    if run is None:
        return exc.payload or {}
    context = run.context or {}
    override = (context.get("payload_overrides") or {}).get(exc.step_name)
    if override is not None:
        return override
    return (context.get("event") or {}).get("data") or {}


def side_effects(run: FlowRun | None) -> list[dict]:
    """What the flow already did in each system: its succeeded steps and their results."""
    if run is None:
        return []
    out = []
    for step in run.steps.filter(status__in=[FlowStep.Status.SUCCEEDED, FlowStep.Status.COMPENSATED]).order_by("seq"):
        out.append(
            {
                "step": step.name,
                "system": step.system,
                "status": step.status,
                "finished_at": step.finished_at,
                "external": step.system != System.HUB,
                "compensation": step.compensation,
                "summary": redact(step.response_summary or {}),
            }
        )
    return out


def retry_preview(exc: SyncException) -> dict:
    """What pressing Retry will do: which step, with which idempotency key, after which side effects."""
    step = exc.step
    run = exc.flow_run
    reason = ""
    if exc.status not in SyncException.OPEN_STATUSES:
        reason = f"This exception is {exc.get_status_display().lower()}."
    elif step is None:
        reason = "There is no flow step to retry; fix the data and resolve it, or replay the event."
    elif run is not None and run.status in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED):
        reason = f"The flow is already {run.get_status_display().lower()}."
    elif exc.status == SyncException.Status.RETRYING and step.status in (FlowStep.Status.PENDING, FlowStep.Status.RUNNING):
        reason = "A retry is already under way."
    elif open_customer_match(exc) is not None:
        reason = "The flow waits for a customer-match decision: merge the customers or keep them separate (below), and it resumes by itself."
    effects = side_effects(run)
    return {
        "can_retry": not reason,
        "reason": reason,
        "step": step,
        "idempotency_key": step.idempotency_key if step else "",
        "system": step.system if step else exc.system,
        "side_effects": effects,
        "external_effects": [e for e in effects if e["external"]],
        "attempts": step.attempts if step else 0,
    }


# --- customer match review ------------------------------------------------------------------------
def open_customer_match(exc: SyncException) -> CustomerMatch | None:
    """The undecided customer match this exception asks about, if any."""
    if exc.error_class not in (ErrorClass.DUPLICATE, ErrorClass.CONFLICT):
        return None
    return CustomerMatch.objects.filter(exception=exc, outcome=CustomerMatch.Outcome.REVIEW, decision="").only("pk").first()


def _document_counts(customer_ids: list) -> dict:
    """customer id → {orders, subscriptions, invoices, payments}: one grouped query per kind."""
    out: dict = {cid: {} for cid in customer_ids}
    for kind, model in (("orders", Order), ("subscriptions", Subscription), ("invoices", Invoice), ("payments", Payment)):
        for row in model.objects.filter(customer_id__in=customer_ids).order_by().values("customer_id").annotate(n=Count("id")):
            out[row["customer_id"]][kind] = row["n"]
    return out


def customer_review(exc: SyncException) -> dict | None:
    """The review panel: the existing customer and the arriving record side by side, per-field
    evidence and score, which system owns each field, what each action would keep, and the
    merge (if one was made) with what it moved."""
    match = (
        CustomerMatch.objects.select_related("customer__legal_entity", "candidate__legal_entity", "decided_by").filter(exception=exc).order_by("-pk").first()
    )
    if match is None:
        return None
    record, candidate = match.customer, match.candidate
    ids = [c.pk for c in (candidate, record) if c is not None]
    rows = compare(candidate, record) if candidate is not None else []
    merge_into, owner_value = survivorship(rows, "survivor"), survivorship(rows, "owner")
    for row in rows:
        row["merge_into"], row["owner_value"] = merge_into[row["field"]], owner_value[row["field"]]
    refs = customer_refs(ids)
    counts = _document_counts(ids)
    merges = list(match.merges.select_related("survivor", "merged", "merged_by", "unmerged_by").order_by("-pk")[:5])
    active = next((m for m in merges if m.active), None)
    evidence = [{**e, "existing": e["b"], "arriving": e["a"]} for e in match.evidence]
    return {
        "match": match,
        "record": record,
        "candidate": candidate,
        "rows": rows,
        "differing": sum(1 for r in rows if r["differs"]),
        "owner_changes": [r for r in rows if r["differs"] and r["owner_value"] != r["merge_into"]],
        "evidence": evidence,
        "candidates": match.candidates,
        "reasons": match.reasons,
        "refs": {cid: sorted(refs.get(cid, set())) for cid in ids},
        "record_refs": sorted(refs.get(record.pk, set())),
        "candidate_refs": sorted(refs.get(candidate.pk, set())) if candidate else [],
        "record_docs": counts.get(record.pk, {}),
        "candidate_docs": counts.get(candidate.pk, {}) if candidate else {},
        "merges": merges,
        "active_merge": active,
        "moved_counts": {k.replace("_", " "): len(v) for k, v in (active.moved or {}).items() if v} if active else {},
        "is_open": match.is_open,
        "waiting_flows": FlowRun.objects.filter(status=FlowRun.Status.PARKED, waits_for=match.waits_for).count() if match.is_open else 0,
    }


# (object type, action) → words; the tone drives the dot colour on the timeline
HISTORY_LABELS = {
    ("exception", "open"): ("Exception opened", "bad"),
    ("exception", "recurred"): ("Happened again", "warn"),
    ("exception", "retry"): ("Retry requested", "info"),
    ("exception", "resolve"): ("Resolved", "ok"),
    ("exception", "auto_resolve"): ("Resolved automatically — the step succeeded on a later attempt", "ok"),
    ("exception", "ignore"): ("Ignored", "muted"),
    ("exception", "assign"): ("Assigned", "info"),
    ("exception", "comment"): ("Comment", "info"),
    ("exception", "replay"): ("Inbound event replayed", "info"),
    ("exception", "cancel_flow_requested"): ("Flow cancellation requested", "warn"),
    ("exception", "payload_edited"): ("Payload edited (applied)", "info"),
    ("exception", "payload_edit_requested"): ("Payload edit awaiting approval", "warn"),
    ("exception", "payload_edit_approved"): ("Payload edit approved and applied", "ok"),
    ("exception", "payload_edit_rejected"): ("Payload edit rejected", "muted"),
    ("exception", "payload_edit_superseded"): ("Payload edit superseded — the flow moved on without it", "muted"),
    ("exception", "customer_merged"): ("Customers merged", "ok"),
    ("exception", "customer_kept_separate"): ("Customers kept separate", "ok"),
    ("exception", "customer_unmerged"): ("Merge undone: two customers again", "warn"),
    ("flow", "start"): ("Flow started", "info"),
    ("flow", "retry_requested"): ("Step re-queued with its idempotency key", "info"),
    ("flow", "cancel_requested"): ("Cancellation started: compensating", "warn"),
    ("flow", "completed"): ("Flow completed", "ok"),
    ("flow", "cancelled"): ("Flow cancelled", "muted"),
    ("flow", "failed"): ("Flow stopped on a failed step", "bad"),
    ("step", "payload_edited"): ("Step will use the edited payload", "info"),
    ("step", "succeeded"): ("Step succeeded", "ok"),
    ("step", "failed"): ("Step failed", "bad"),
    ("step", "retry"): ("Step waiting to retry (transient error)", "warn"),
    ("step", "compensated"): ("Step undone (compensation)", "muted"),
    ("inbox", "dead_lettered"): ("Inbound event dead-lettered", "bad"),
    ("inbox", "replay"): ("Inbound event sent for processing again", "info"),
}
# engine chatter that adds nothing to the story of one exception
_HISTORY_QUIET = {("step", "running"), ("step", "pending"), ("flow", "running"), ("flow", "waiting"), ("flow", "pending")}


def exception_history(exc: SyncException) -> list[AuditEntry]:
    """The exception's own audit, and its flow's and steps' (retries, payload edits, auto-resolution)."""
    q = Q(object_type="exception", object_id=str(exc.pk))
    step_names = {}
    if exc.flow_run_id:
        q |= Q(object_type="flow", object_id=str(exc.flow_run_id))
        step_names = {str(pk): name for pk, name in FlowStep.objects.filter(flow_run_id=exc.flow_run_id).values_list("pk", "name")}
        q |= Q(object_type="step", object_id__in=list(step_names))
    if exc.inbox_event_id:
        q |= Q(object_type="inbox", object_id=str(exc.inbox_event_id))
    entries = []
    for entry in AuditEntry.objects.filter(q).order_by("at", "id")[:400]:
        key = (entry.object_type, entry.action)
        if key in _HISTORY_QUIET:
            continue
        label, tone = HISTORY_LABELS.get(key, (entry.action.replace("_", " ").capitalize(), "info"))
        entry.label, entry.tone = label, tone
        entry.step_name = step_names.get(entry.object_id, "") if entry.object_type == "step" else (entry.after or {}).get("step", "")
        entry.this_step = entry.object_type == "step" and entry.object_id == str(exc.step_id)
        entry.payload_change = "payload" in (entry.after or {})
        if entry.payload_change:
            entry.before_pretty = pretty((entry.before or {}).get("payload") or {})
            entry.after_pretty = pretty(entry.after["payload"])
        entries.append(entry)
    return entries[-300:]


def exception_story(exc: SyncException) -> dict:
    steps = list(exc.flow_run.steps.order_by("seq")) if exc.flow_run_id else []
    edits = list(exc.payload_edits.select_related("requested_by", "decided_by").order_by("-requested_at")[:20])
    for edit in edits:
        edit.original_pretty, edit.payload_pretty = pretty(edit.original), pretty(edit.payload)
    inbox = exc.inbox_event
    history = exception_history(exc)
    closing = next((e for e in reversed(history) if e.object_type == "exception" and e.action in ("resolve", "ignore", "auto_resolve", "replay")), None)
    response = exc.response if isinstance(exc.response, dict) else {}
    review = customer_review(exc) if exc.error_class in (ErrorClass.DUPLICATE, ErrorClass.CONFLICT) else None
    suggestion = SUGGESTIONS.get(exc.error_class, "")
    if review is not None:
        suggestion = (
            "Compare the two customers in the review below, then merge them (one customer keeps both references) or keep them separate; "
            "the flows waiting on the decision resume by themselves."
            if review["is_open"]
            else "Decided in the customer match review below; a merge can be undone there."
        )
    return {
        "steps": steps,
        "step_count": len(steps),
        "audit": history,
        "closing": closing if exc.status not in SyncException.OPEN_STATUSES else None,
        "target_status": response.get("status_code"),
        "target_code": response.get("code"),
        "cause_count": SyncException.objects.filter(cause_key=exc.cause_key, status__in=SyncException.OPEN_STATUSES).count() if exc.cause_key else 0,
        "suggestion": suggestion,
        "comments": list(exc.comments.select_related("author")),
        "payload_pretty": pretty(exc.payload or {}),
        "response_pretty": pretty(exc.response or {}),
        "preview": retry_preview(exc),
        "verb": FLOW_VERBS.get(exc.flow_type, "syncing"),
        "payload_edits": edits,
        "pending_edit": next((e for e in edits if e.status == PayloadEdit.Status.PENDING), None),
        "can_edit_payload": exc.error_class in EDITABLE_ERROR_CLASSES and exc.step_id is not None and exc.status in SyncException.OPEN_STATUSES,
        "is_financial": exc.flow_type in FINANCIAL_FLOW_TYPES,
        "step_input_pretty": pretty(step_input(exc)),
        "can_replay": bool(inbox and inbox.status == InboxEvent.Status.DEAD and exc.status in SyncException.OPEN_STATUSES),
        "can_cancel": bool(exc.flow_run_id and exc.flow_run.status not in (FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED)),
        "inbox": inbox,
        "review": review,
    }


# --- bulk retry: exactly what the filter matches --------------------------------------------------
BULK_KEYS_SHOWN = 1000


def bulk_retry_preview(*, filters: ExceptionFilterSet, keys_limit: int = BULK_KEYS_SHOWN) -> dict:
    """A dry run: the exact count the filter matches, how many will be retried, their idempotency keys,
    and the side effects already done in each system by those flows."""
    matched_qs = filters.qs
    matched = matched_qs.count()
    retryable_qs = matched_qs.filter(status=SyncException.Status.OPEN, step__isnull=False).exclude(
        flow_run__status__in=[FlowRun.Status.COMPLETED, FlowRun.Status.CANCELLED]
    )
    retryable = retryable_qs.count()
    keys = list(retryable_qs.values_list("step__idempotency_key", flat=True)[:keys_limit])
    by_system = {r["system"]: r["n"] for r in retryable_qs.order_by().values("system").annotate(n=Count("id"))}
    effects = (
        FlowStep.objects.filter(flow_run__exceptions__in=retryable_qs.order_by().values("pk"), status=FlowStep.Status.SUCCEEDED)
        .exclude(system=System.HUB)
        .order_by()
        .values("system", "name")
        .annotate(n=Count("id", distinct=True))
        .order_by("system", "name")
    )
    return {
        "matched": matched,
        "retryable": retryable,
        "skipped": matched - retryable,
        "by_system": by_system,
        "idempotency_keys": keys,
        "keys_truncated": retryable > len(keys),
        "side_effects": list(effects),
        "description": filters.describe(),
        "query": filters.querystring(),
    }


def saved_views_for(user) -> QuerySet:
    return SavedView.objects.filter(Q(owner=user) | Q(group__in=user.groups.all())).select_related("owner", "group").distinct().order_by("name")
