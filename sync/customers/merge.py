"""Merging two canonical customers, reversibly, and the decisions on a customer match.

A merge keeps one surviving customer. The other's ExternalRefs, orders, subscriptions, invoices,
payments, contracts, credit memos and flow runs are re-pointed to it, and the merge record
stores exactly which rows moved and which of the survivor's fields changed, so `unmerge` puts
back those rows and those values — and nothing that arrived for the survivor since. The merged
customer stays as a row with `merged_into` set (ids in history still resolve). Each merge and
unmerge is audited. Survivorship of field values: docs/CUSTOMER_MATCHING.md.

These functions change hub data only. Resolving the review exception and resuming the flows that
waited on the decision is the caller's (monitoring/exceptions/services.py), which sits above the
engine.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from sync.audit import audit_record
from sync.models import (
    Contract,
    CreditMemo,
    Customer,
    CustomerMatch,
    CustomerMerge,
    ExternalRef,
    FlowRun,
    Invoice,
    Order,
    Payment,
    Subscription,
)

from .matching import owner_roles, refresh_keys, role_of_system

# the rows that belong to a customer, by kind
MOVABLE = {
    "orders": Order,
    "subscriptions": Subscription,
    "invoices": Invoice,
    "payments": Payment,
    "contracts": Contract,
    "credit_memos": CreditMemo,
}
# the customer values a merge decides between (the other fields are keys derived from these)
VALUE_FIELDS = ("name", "tax_id", "email", "country", "payment_terms", "segment", "account_owner", "currency", "legal_entity")
FIELD_LABELS = {
    "name": "Name",
    "tax_id": "Tax id",
    "email": "Email",
    "country": "Country",
    "payment_terms": "Payment terms",
    "segment": "Segment",
    "account_owner": "Account owner",
    "currency": "Currency",
    "legal_entity": "Legal entity",
}
RULES = ("survivor", "owner")  # merge into (the survivor's values win) | take the owner's value


def _value(customer: Customer, field: str):
    return customer.legal_entity_id if field == "legal_entity" else getattr(customer, field)


def _display(customer: Customer, field: str) -> str:
    if field == "legal_entity":
        return customer.legal_entity.code if customer.legal_entity_id else ""
    return str(getattr(customer, field) or "")


def compare(survivor: Customer, merged: Customer, *, owners: dict[str, str] | None = None) -> list[dict]:
    """Both customers' values side by side, with the owning role and which side holds the owner's value."""
    owners = owner_roles() if owners is None else owners
    rows = []
    for field in VALUE_FIELDS:
        a, b = _value(survivor, field), _value(merged, field)
        src_a = (survivor.field_sources or {}).get(field, "")
        src_b = (merged.field_sources or {}).get(field, "")
        owner = owners.get(field, "")
        owner_side = ""
        if owner and a != b:
            a_owns, b_owns = role_of_system(src_a) == owner and a not in ("", None), role_of_system(src_b) == owner and b not in ("", None)
            owner_side = "survivor" if a_owns and not b_owns else ("merged" if b_owns and not a_owns else "")
        rows.append(
            {
                "field": field,
                "label": FIELD_LABELS[field],
                "survivor": _display(survivor, field),
                "merged": _display(merged, field),
                "survivor_source": src_a,
                "merged_source": src_b,
                "differs": a != b,
                "owner_role": owner,
                "owner_side": owner_side,
            }
        )
    return rows


def survivorship(rows: list[dict], rule: str) -> dict[str, str]:
    """field → 'survivor' or 'merged'. Merge into: the survivor's value, its blanks filled from the
    other. Take the owner's value: where one side's value came from the system that owns the field
    (OwnershipRule), that one; elsewhere as merge into."""
    if rule not in RULES:
        raise ValidationError({"rule": f"Unknown survivorship rule {rule!r}."})
    out = {}
    for row in rows:
        if rule == "owner" and row["owner_side"]:
            out[row["field"]] = row["owner_side"]
        else:
            out[row["field"]] = "survivor" if row["survivor"] not in ("", None) or row["merged"] in ("", None) else "merged"
    return out


def _locked(*ids) -> dict:
    """Lock the customers in a fixed order (no deadlock between two merges of the same pair)."""
    try:
        wanted = [uuid.UUID(str(i)) for i in ids]
    except ValueError:
        raise ValidationError({"customer": "Not a customer id."}) from None
    customers = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=wanted).order_by("pk")}
    missing = [str(i) for i in wanted if i not in customers]
    if missing:
        raise ValidationError({"customer": f"Customer {', '.join(missing)} does not exist."})
    return customers


@transaction.atomic
def merge_customers(
    *, survivor_id, merged_id, rule: str = "survivor", choices: dict[str, str] | None = None, user=None, match: CustomerMatch | None = None, note: str = ""
) -> CustomerMerge:
    """Fold `merged` into `survivor`. `choices` (field → 'survivor'/'merged') override the rule per field."""
    if str(survivor_id) == str(merged_id):
        raise ValidationError({"survivor": "A customer cannot be merged into itself."})
    customers = _locked(survivor_id, merged_id)
    survivor, merged = customers[uuid.UUID(str(survivor_id))], customers[uuid.UUID(str(merged_id))]
    for c in (survivor, merged):
        if c.merged_into_id:
            raise ValidationError({"customer": f"{c.name} is already merged into another customer; unmerge that first."})
    rows = compare(survivor, merged)
    chosen = survivorship(rows, rule)
    for field, side in (choices or {}).items():
        if field not in chosen or side not in ("survivor", "merged"):
            raise ValidationError({"fields": f"Choose 'survivor' or 'merged' for a known field, not {field}={side}."})
        chosen[field] = side

    moved: dict[str, list] = {}
    refs = ExternalRef.objects.filter(canonical_type="customer", canonical_id=merged.pk)
    moved["external_refs"] = list(refs.values_list("pk", flat=True))
    refs.update(canonical_id=survivor.pk)
    for kind, model in MOVABLE.items():
        rows_of = model.objects.filter(customer=merged)
        moved[kind] = [str(pk) for pk in rows_of.values_list("pk", flat=True)]
        rows_of.update(customer=survivor)
    runs = FlowRun.objects.filter(customer_id=merged.pk)
    moved["flow_runs"] = list(runs.values_list("pk", flat=True))
    runs.update(customer_id=survivor.pk)

    before, after, why = {}, {}, {}
    sources = dict(survivor.field_sources or {})
    for row in rows:
        field = row["field"]
        why[field] = {"side": chosen[field], "owner_role": row["owner_role"], "owner_side": row["owner_side"]}
        if chosen[field] != "merged" or not row["differs"]:
            continue
        attr = "legal_entity_id" if field == "legal_entity" else field
        before[attr], after[attr] = getattr(survivor, attr), getattr(merged, attr)
        setattr(survivor, attr, after[attr])
        if (merged.field_sources or {}).get(field):
            sources[field] = merged.field_sources[field]
    survivor.field_sources = sources
    refresh_keys(survivor)
    survivor.save()
    merged.merged_into = survivor
    merged.save(update_fields=["merged_into", "updated_at"])
    record = CustomerMerge.objects.create(
        survivor=survivor,
        merged=merged,
        match=match,
        moved=moved,
        survivor_before=_jsonable(before),
        survivor_after=_jsonable(after),
        field_choices=why,
        merged_by=user if getattr(user, "is_authenticated", False) else None,
        note=note,
    )
    counts = {kind: len(ids) for kind, ids in moved.items() if ids}
    audit_record(
        object_type="customer",
        object_id=survivor.pk,
        action="merge",
        before={"fields": record.survivor_before},
        after={"merged": str(merged.pk), "merged_name": merged.name, "moved": counts, "fields": record.survivor_after, "rule": rule, "merge": record.pk},
        user=user,
        note=note,
    )
    audit_record(
        object_type="customer", object_id=merged.pk, action="merged_into", after={"survivor": str(survivor.pk), "merge": record.pk}, user=user, note=note
    )
    return record


def _jsonable(values: dict) -> dict:
    return {k: (str(v) if v is not None and not isinstance(v, (str, int, float, bool)) else v) for k, v in values.items()}


@transaction.atomic
def unmerge(*, merge_id: int, user=None, note: str = "") -> CustomerMerge:
    """Undo a merge: the rows that moved go back, the survivor's changed fields get their old values
    (unless changed again since), and the merged customer is active again."""
    record = CustomerMerge.objects.select_for_update().filter(pk=merge_id).first()
    if record is None:
        raise ValidationError({"merge": f"Merge #{merge_id} does not exist."})
    if not record.active:
        raise ValidationError({"merge": f"Merge #{record.pk} was already undone."})
    customers = _locked(record.survivor_id, record.merged_id)
    survivor, merged = customers[record.survivor_id], customers[record.merged_id]
    if survivor.merged_into_id:
        raise ValidationError({"merge": f"{survivor.name} was since merged into another customer; unmerge that merge first."})
    if merged.merged_into_id != survivor.pk:
        raise ValidationError({"merge": f"{merged.name} is not merged into {survivor.name} any more."})
    moved = record.moved or {}
    restored = {}
    restored["external_refs"] = ExternalRef.objects.filter(pk__in=moved.get("external_refs", []), canonical_id=survivor.pk).update(canonical_id=merged.pk)
    for kind, model in MOVABLE.items():
        restored[kind] = model.objects.filter(pk__in=moved.get(kind, []), customer=survivor).update(customer=merged)
    restored["flow_runs"] = FlowRun.objects.filter(pk__in=moved.get("flow_runs", []), customer_id=survivor.pk).update(customer_id=merged.pk)
    kept = {}
    for attr, old in (record.survivor_before or {}).items():
        current = getattr(survivor, attr)
        if str(current) == str((record.survivor_after or {}).get(attr)):
            setattr(survivor, attr, old)
        else:
            kept[attr] = current  # changed again since the merge: the newer value stays
    refresh_keys(survivor)
    survivor.save()
    merged.merged_into = None
    merged.save(update_fields=["merged_into", "updated_at"])
    record.unmerged_at = timezone.now()
    record.unmerged_by = user if getattr(user, "is_authenticated", False) else None
    record.unmerge_note = note
    record.save(update_fields=["unmerged_at", "unmerged_by", "unmerge_note"])
    audit_record(
        object_type="customer",
        object_id=survivor.pk,
        action="unmerge",
        before={"merged": str(merged.pk), "merge": record.pk},
        after={"restored": {k: v for k, v in restored.items() if v}, "kept_newer_values": _jsonable(kept)},
        user=user,
        note=note,
    )
    audit_record(object_type="customer", object_id=merged.pk, action="unmerged", after={"survivor": str(survivor.pk), "merge": record.pk}, user=user, note=note)
    return record


# --- decisions on a customer match --------------------------------------------------------------
def _open_match(match_id: int) -> CustomerMatch:
    match = CustomerMatch.objects.select_for_update(of=("self",)).select_related("customer", "candidate").filter(pk=match_id).first()
    if match is None:
        raise ValidationError({"match": f"Customer match #{match_id} does not exist."})
    if match.outcome != CustomerMatch.Outcome.REVIEW:
        raise ValidationError({"match": "Only a match sent for review can be decided."})
    if match.decision:
        raise ValidationError({"match": f"This match was already decided: {match.get_decision_display()}."})
    return match


def _decided(match: CustomerMatch, decision: str, user, note: str) -> None:
    match.decision, match.decided_at, match.decision_note = decision, timezone.now(), note
    match.decided_by = user if getattr(user, "is_authenticated", False) else None
    match.save(update_fields=["decision", "decided_at", "decided_by", "decision_note"])


@transaction.atomic
def match_merge(*, match_id: int, survivor: str = "candidate", rule: str = "survivor", choices=None, user=None, note: str = "") -> CustomerMerge:
    """Decide a match as 'the same customer': survivor = 'candidate' (the existing customer, the
    default) or 'record' (the customer made for the arriving record)."""
    match = _open_match(match_id)
    if match.candidate_id is None:
        raise ValidationError({"match": "This match has no candidate to merge with."})
    if survivor not in ("candidate", "record"):
        raise ValidationError({"survivor": "Choose which customer survives: the existing one (candidate) or the arriving one (record)."})
    ids = (match.candidate_id, match.customer_id) if survivor == "candidate" else (match.customer_id, match.candidate_id)
    record = merge_customers(survivor_id=ids[0], merged_id=ids[1], rule=rule, choices=choices, user=user, match=match, note=note)
    _decided(match, CustomerMatch.Decision.MERGED, user, note)
    return record


@transaction.atomic
def match_keep_separate(*, match_id: int, user=None, note: str = "") -> CustomerMatch:
    """Decide a match as 'different customers': the provisional customer becomes a customer of its own."""
    match = _open_match(match_id)
    _decided(match, CustomerMatch.Decision.KEPT_SEPARATE, user, note)
    audit_record(
        object_type="customer",
        object_id=match.customer_id,
        action="kept_separate",
        after={"candidate": str(match.candidate_id), "match": match.pk},
        user=user,
        note=note,
    )
    return match


@transaction.atomic
def match_unmerge(*, match_id: int, user=None, note: str = "") -> CustomerMerge:
    """Undo the merge a match decided; the match then counts as kept separate (unmerged)."""
    match = CustomerMatch.objects.select_for_update().filter(pk=match_id).first()
    if match is None:
        raise ValidationError({"match": f"Customer match #{match_id} does not exist."})
    record = match.merges.filter(unmerged_at__isnull=True).order_by("-pk").first()
    if record is None:
        raise ValidationError({"match": "This match has no active merge to undo."})
    record = unmerge(merge_id=record.pk, user=user, note=note)
    _decided(match, CustomerMatch.Decision.UNMERGED, user, note)
    return record
