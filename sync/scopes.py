"""Scoped integration credentials: what each integration token may send to the events API.

A token belongs to an integration user; the user's `IntegrationScope` names the sources it may
claim (`source` of the envelope) and the canonical event types it may send. A CRM relay
therefore cannot send an invoice or a payment, and no token can claim the id space of a
vendor whose events arrive by signed webhook or poll (`RESERVED_SOURCES`): a posted
`source: "stripe"` with a real Stripe event id would otherwise make the genuine signed event
a duplicate, and that invoice would never get a flow. Every refusal is a 403 problem and an
audit row.

A scope grants business events, not one contract version: a token that may send
`order.closed_won.v1` may send every version of `order.closed_won` (docs/CONTRACTS.md), so a
new version needs no re-issued tokens.
"""

from __future__ import annotations

from sync.audit import audit_record
from sync.canonical.events import event_types
from sync.canonical.lifecycle import family_version
from sync.models import IntegrationScope, System

# the inbox's own id spaces for verified vendor deliveries (webhooks, polls): never claimable by a token
RESERVED_SOURCES = frozenset(s.value for s in System)

PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    # CRM / CPQ relay (Salesforce): deals, contract changes and the accounts they name
    "crm": {
        "sources": ("crm-relay", "salesforce-relay"),
        "event_types": (
            "order.closed_won.v1",  # and its other versions (`granted`)
            "subscription.amended.v1",
            "subscription.renewed.v1",
            "subscription.cancelled.v1",
            "customer.upserted.v1",
        ),
    },
    # subscription billing relay (Stripe or another biller): invoices, credit memos, subscription changes
    "billing": {
        "sources": ("billing-relay", "stripe-relay"),
        "event_types": (
            "invoice.finalized.v1",
            "credit_memo.issued.v1",
            "subscription.amended.v1",
            "subscription.renewed.v1",
            "subscription.cancelled.v1",
        ),
    },
    # payment processor / bank feed
    "payments": {"sources": ("payments-relay",), "event_types": ("payment.received.v1", "payment.failed.v1")},
    # ERP relay (NetSuite): posted invoices
    "erp": {"sources": ("erp-relay", "netsuite-relay"), "event_types": ("invoice.posted.v1",)},
    # metering: closed usage periods
    "usage": {"sources": ("metering", "usage-relay"), "event_types": ("usage.closed.v1",)},
}

# integration usernames the product has documented or the demo/bench used, and their scope (data migration, issue_token)
USERNAME_PRESETS = (
    ("crm", "crm"),
    ("salesforce", "crm"),
    ("sfdc", "crm"),
    ("billing", "billing"),
    ("stripe", "billing"),
    ("payment", "payments"),
    ("erp", "erp"),
    ("netsuite", "erp"),
    ("metering", "usage"),
    ("usage", "usage"),
)


def preset_for_username(username: str) -> str | None:
    name = username.lower()
    return next((preset for prefix, preset in USERNAME_PRESETS if name.startswith(prefix)), None)


def grant(user, preset: str, *, extra_sources: tuple[str, ...] = (), extra_event_types: tuple[str, ...] = ()) -> IntegrationScope:
    """Bind `user`'s token to a preset (plus extra sources/types); replaces any scope it had."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown scope {preset!r}; one of {', '.join(PRESETS)}.")
    reserved = sorted(set(extra_sources) & RESERVED_SOURCES)
    if reserved:
        raise ValueError(f"Source {reserved[0]!r} is reserved for the {reserved[0]} connector's verified webhooks and polls.")
    unknown = sorted(set(extra_event_types) - set(event_types()))
    if unknown:
        raise ValueError(f"Unknown event type {unknown[0]!r}.")
    sources = sorted({*PRESETS[preset]["sources"], *extra_sources})
    types = sorted({*PRESETS[preset]["event_types"], *extra_event_types})
    scope, _ = IntegrationScope.objects.update_or_create(user=user, defaults={"preset": preset, "sources": sources, "event_types": types})
    return scope


def _family(event_type: str) -> str | None:
    try:
        return family_version(event_type)[0]
    except ValueError:
        return None


def granted(scope_types, event_type: str) -> bool:
    """May a scope with these event types send `event_type`? Any version of a granted event type."""
    family = _family(event_type)
    return event_type in scope_types or (family is not None and any(_family(t) == family for t in scope_types))


def refusals(user, envelopes: list[dict], *, indexed: bool = False) -> list[dict]:
    """Problems [{field, message, code}] for each envelope this user's token may not send; [] when all may."""
    scope = IntegrationScope.objects.filter(user_id=getattr(user, "pk", None)).first()
    problems: list[dict] = []
    for index, envelope in enumerate(envelopes):
        if not isinstance(envelope, dict):
            continue  # not an event at all: validation names it
        prefix = f"events[{index}]." if indexed else ""
        source, event_type = envelope.get("source"), envelope.get("type")
        if scope is None:
            problems.append(
                {"field": f"{prefix}source", "message": "This credential has no integration scope; issue it with `issue_token --scope`.", "code": "no_scope"}
            )
        elif source in RESERVED_SOURCES:
            problems.append(
                {
                    "field": f"{prefix}source",
                    "message": f"Source {source!r} is reserved: its events arrive only through the {source} connector's verified webhooks and polls.",
                    "code": "reserved_source",
                }
            )
        elif source not in scope.sources:
            problems.append(
                {
                    "field": f"{prefix}source",
                    "message": f"This {scope.preset} credential may not send as {source!r}; allowed: {', '.join(scope.sources)}.",
                    "code": "source_out_of_scope",
                }
            )
        elif event_type in event_types() and not granted(scope.event_types, event_type):  # an unknown type is a 400 (validation names it)
            problems.append(
                {"field": f"{prefix}type", "message": f"This {scope.preset} credential may not send {event_type!r} events.", "code": "event_type_out_of_scope"}
            )
    return problems


def audit_refusal(request, envelopes: list[dict], problems: list[dict]) -> None:
    user = request.user
    scope = IntegrationScope.objects.filter(user_id=getattr(user, "pk", None)).values_list("preset", flat=True).first()
    audit_record(
        object_type="integration",
        object_id=user.get_username() if getattr(user, "is_authenticated", False) else "anonymous",
        action="scope_refused",
        after={
            "scope": scope or "",
            "path": request.path,
            "events": [
                {"id": str(e.get("id"))[:255], "source": str(e.get("source"))[:64], "type": str(e.get("type"))[:96]}
                for e in envelopes[:20]
                if isinstance(e, dict)
            ],
            "count": len(envelopes),
        },
        user=user,
        note="; ".join(p["message"] for p in problems[:3])[:500],
    )
