"""Every arriving customer record meets the canonical customers here.

`customer_for_account` is what the flows call (order activation's "ensure customer", customer
sync's match step). Under the account's advisory lock:

- a record the hub knows (its ExternalRef exists) updates its customer — unless that customer
  waits for a review, then the caller parks on the same review;
- a record the hub does not know is matched under one more advisory lock (`customer-matching`),
  so two flows bringing look-alike records at the same moment see each other: exact keys first
  (valid tax id, cross-system ids, company email domain), then the trigram block on the
  normalised name, each candidate scored with rapidfuzz (sync/customers/scoring.py), and one
  of three outcomes: auto-link, review (a provisional customer + a CustomerMatch the caller
  parks on), or new.

Thresholds and weights: settings.CUSTOMER_MATCHING; the rules: docs/CUSTOMER_MATCHING.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.search import TrigramSimilarity
from django.db import connection, transaction
from django.db.models import Q

from sync.audit import audit_record
from sync.canonical.store import lock_account, ref_canonical, ref_set
from sync.models import Customer, CustomerMatch, ExternalRef, FlowRun, LegalEntity, OwnershipRule

from .normalise import EmailDomain, Profile, email_domain, name_key, tax_id
from .scoring import Candidate, Decision, decide, score_pair

ACCOUNT = "Account"
# canonical Customer fields an arriving account writes (account key → field)
ACCOUNT_FIELDS = {"name": "name", "email": "email", "tax_id": "tax_id", "segment": "segment", "owner": "account_owner", "country": "country"}


def config() -> dict:
    return settings.CUSTOMER_MATCHING


def lock_matching() -> None:
    """Serialise matching of records the hub does not know yet (held to the end of the transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('customer-matching'))")


# --- profiles ---------------------------------------------------------------------------------------
def claimed_refs(account: dict) -> set[tuple[str, str, str]]:
    """Ids other systems gave this party, as the record carries them (e.g. the CRM's ERP_Customer_Id__c)."""
    roles = settings.CONNECTOR_ROLES
    refs = set()
    for key, role in (("erp_customer_id", "erp"), ("billing_customer_id", "billing")):
        if account.get(key):
            refs.add((roles[role], "customer", str(account[key])))
    return refs


def record_profile(account: dict) -> Profile:
    return Profile.of(
        name=account.get("name", ""),
        email=account.get("email", "") or "",
        tax_id_raw=account.get("tax_id", "") or "",
        country=account.get("country", "") or "",
        refs=claimed_refs(account),
    )


def customer_profile(customer: Customer, refs=()) -> Profile:
    """A canonical customer's profile from its stored keys (no cleanco per candidate)."""
    country = customer.country or ""
    domain = email_domain(customer.email)
    return Profile(
        name=customer.name,
        name_key=customer.name_key or name_key(customer.name),
        email=customer.email,
        domain=domain if domain else (EmailDomain(customer.email_domain, False) if customer.email_domain else None),
        tax=tax_id(customer.tax_id, country),
        country=country,
        refs=frozenset(refs),
    )


def refresh_keys(customer: Customer) -> list[str]:
    """Recompute the stored match keys from the values; returns the fields changed."""
    profile = Profile.of(name=customer.name, email=customer.email, tax_id_raw=customer.tax_id, country=customer.country)
    changed = []
    for fname, value in (("name_key", profile.name_key[:255]), ("tax_key", profile.tax_key[:64]), ("email_domain", profile.domain_key[:255])):
        if getattr(customer, fname) != value:
            setattr(customer, fname, value)
            changed.append(fname)
    return changed


# --- candidates ---------------------------------------------------------------------------------------
def customer_refs(customer_ids) -> dict:
    out: dict = {}
    for cid, system, object_type, external_id in ExternalRef.objects.filter(canonical_type="customer", canonical_id__in=list(customer_ids)).values_list(
        "canonical_id", "system", "object_type", "external_id"
    ):
        out.setdefault(cid, set()).add((system, object_type, external_id))
    return out


def find_candidates(profile: Profile, *, system: str, object_type: str, exclude=()) -> list[Candidate]:
    """The block, in SQL with indexes: customers sharing an exact key (tax key, a claimed
    cross-system id, the company email domain) and those whose normalised name is trigram-similar
    (GIN pg_trgm index), at most CANDIDATES per kind; then each scored in Python."""
    cfg = config()
    limit = int(cfg["CANDIDATES"])
    active = Customer.objects.filter(merged_into__isnull=True).exclude(pk__in=list(exclude))
    ids: dict = {}
    claimed: list = []
    if profile.refs:
        by_ref = Q(pk__in=[])
        for system_, type_, external_id in profile.refs:
            by_ref |= Q(system=system_, object_type=type_, external_id=external_id)
        claimed = list(ExternalRef.objects.filter(by_ref, canonical_type="customer").values_list("canonical_id", flat=True)[:limit])
    if claimed:
        ids.update(dict.fromkeys(active.filter(pk__in=claimed).values_list("pk", flat=True)[:limit]))
    if profile.tax_key:
        ids.update(dict.fromkeys(active.filter(tax_key=profile.tax_key).order_by("created_at").values_list("pk", flat=True)[:limit]))
    if profile.name_key:
        with connection.cursor() as cursor:  # SET LOCAL: this transaction only
            cursor.execute("SELECT set_config('pg_trgm.similarity_threshold', %s, true)", [str(cfg["TRIGRAM_SIMILARITY"])])
        similar = (
            active.filter(name_key__trigram_similar=profile.name_key)
            .annotate(similarity=TrigramSimilarity("name_key", profile.name_key))
            .order_by("-similarity", "created_at")
            .values_list("pk", flat=True)[:limit]
        )
        ids.update(dict.fromkeys(similar))
    if profile.domain_key:
        ids.update(dict.fromkeys(active.filter(email_domain=profile.domain_key).order_by("created_at").values_list("pk", flat=True)[:limit]))
    if not ids:
        return []
    customers = Customer.objects.in_bulk(list(ids))
    refs = customer_refs(ids)
    weights, cap = cfg["WEIGHTS"], float(cfg["NUMBER_MISMATCH_NAME_CAP"])
    out = []
    for cid in ids:
        customer = customers[cid]
        own = refs.get(cid, set())
        pair = score_pair(profile, customer_profile(customer, own), weights=weights, number_cap=cap)
        same_system = tuple(sorted(e for s, t, e in own if (s, t) == (system, object_type)))
        out.append(Candidate(cid, customer_profile(customer, own), pair, same_system))
    return out


def match_record(profile: Profile, *, system: str, object_type: str, exclude=()) -> Decision:
    cfg = config()
    candidates = find_candidates(profile, system=system, object_type=object_type, exclude=exclude)
    return decide(candidates, auto_link=float(cfg["AUTO_LINK"]), review=float(cfg["REVIEW"]))


# --- resolving an arriving account -----------------------------------------------------------------
@dataclass
class Resolution:
    customer: Customer
    outcome: str  # known | new | auto_linked | review
    match: CustomerMatch | None = None

    @property
    def needs_review(self) -> bool:
        return self.match is not None and self.match.is_open


def _fields_of(account: dict, currency: str, entity: LegalEntity | None) -> dict:
    fields = {field: (account.get(key) or "") for key, field in ACCOUNT_FIELDS.items()}
    fields["name"] = fields["name"][:255]
    fields["currency"] = currency
    fields["legal_entity"] = entity
    return fields


def source_system(source: str) -> str:
    """field_sources hold "system:external id" (older rows: the system alone)."""
    return (source or "").split(":", 1)[0]


def role_of_system(system: str) -> str:
    """The role a system plays (crm/billing/erp), '' for the hub, the events API and unknown sources."""
    return next((role for role, name in settings.CONNECTOR_ROLES.items() if name == source_system(system)), "")


def owner_roles() -> dict[str, str]:
    """field → the role that owns it (OwnershipRule, editable in admin; shown on the Connectors page)."""
    out: dict[str, str] = {}
    for field_group in OwnershipRule.objects.all():
        for fname in field_group.fields or []:
            out.setdefault(fname, field_group.owner_role)
    return out


def _write(customer: Customer, fields: dict, system: str, record_id: str, *, only_blank: bool = False) -> None:
    """Write an arriving record's non-empty values, noting which record each value came from.

    A record replaces an empty value, a value it gave itself, or (unless `only_blank`) a value
    nobody is known to have given. A value another record gave — the survivor's, after a merge —
    is replaced only by the system that owns the field (OwnershipRule) over a non-owner's value;
    otherwise it stays: two CRM accounts of one customer do not overwrite each other by turns."""
    me = f"{system}:{record_id}"
    my_role = role_of_system(system)
    owners = owner_roles()
    sources = dict(customer.field_sources or {})
    for fname, value in fields.items():
        if value in ("", None):
            continue
        current = getattr(customer, fname if fname != "legal_entity" else "legal_entity_id")
        holder = sources.get(fname, "")
        if current not in ("", None) and holder != me:
            owner = owners.get(fname, "")
            owner_beats = bool(owner) and my_role == owner and role_of_system(holder) != owner
            if not owner_beats and (only_blank or holder):
                continue
        if fname == "legal_entity":
            customer.legal_entity = value
        else:
            setattr(customer, fname, value)
        sources[fname] = me
    customer.field_sources = sources
    refresh_keys(customer)


def _record_snapshot(account: dict, profile: Profile) -> dict:
    return {
        **{
            k: account.get(k, "")
            for k in ("name", "email", "tax_id", "country", "segment", "owner", "erp_customer_id", "billing_customer_id")
            if account.get(k)
        },
        "keys": {"name": profile.name_key, "tax_id": profile.tax_key, "email_domain": profile.domain_key, "country": profile.country},
    }


def _candidates_json(decision: Decision, customers: dict) -> list[dict]:
    return [
        {
            "customer_id": str(c.customer_id),
            "name": customers[c.customer_id].name if c.customer_id in customers else c.profile.name,
            "score": c.score,
            "agree": sorted(c.pair.agree),
            "disagree": sorted(c.pair.disagree),
            "same_system_refs": list(c.same_system_refs),
        }
        for c in decision.considered[:10]
    ]


@transaction.atomic
def customer_for_account(*, source: str, account: dict, currency: str, entity: LegalEntity | None, flow_run: FlowRun | None = None) -> Resolution:
    """The hub customer for a CRM account: known, linked, new — or provisional and waiting for review."""
    external_id = account["external_id"]
    lock_account(source, external_id)
    fields = _fields_of(account, currency, entity)
    canonical_id = ref_canonical(system=source, object_type=ACCOUNT, external_id=external_id)
    if canonical_id:
        customer = Customer.objects.select_for_update().get(pk=canonical_id)
        waiting = CustomerMatch.objects.filter(customer=customer, outcome=CustomerMatch.Outcome.REVIEW, decision="").order_by("-pk").first()
        if waiting is not None:
            return Resolution(customer, "review", waiting)
        _write(customer, fields, source, external_id)
        customer.save()
        return Resolution(customer, "known")

    lock_matching()
    profile = record_profile(account)
    decision = match_record(profile, system=source, object_type=ACCOUNT)
    best = decision.best
    flow_type = flow_run.flow_type if flow_run else ""
    common = {
        "system": source,
        "object_type": ACCOUNT,
        "external_id": external_id,
        "record": _record_snapshot(account, profile),
        "flow_type": flow_type,
        "flow_run": flow_run if flow_run is not None and flow_run.pk else None,
        "reasons": decision.reasons,
        "score": Decimal(str(best.score)) if best else None,
        "evidence": [f.as_dict() for f in best.pair.fields] if best else [],
    }
    if decision.outcome == "auto_linked":
        customer = Customer.objects.select_for_update().get(pk=best.customer_id)
        _write(customer, fields, source, external_id, only_blank=True)
        customer.save()
        ref_set(system=source, object_type=ACCOUNT, external_id=external_id, canonical_type="customer", canonical_id=customer.pk)
        match = CustomerMatch.objects.create(
            **common, outcome=CustomerMatch.Outcome.AUTO_LINKED, customer=customer, candidate=customer, candidates=_candidates_json(decision, {})
        )
        audit_record(
            object_type="customer",
            object_id=customer.pk,
            action="auto_linked",
            after={"system": source, "external_id": external_id, "score": best.score, "match": match.pk},
            note="; ".join(decision.reasons),
            correlation_id=flow_run.correlation_id if flow_run else None,
        )
        return Resolution(customer, "auto_linked", match)

    customer = Customer(currency=currency)
    _write(customer, fields, source, external_id)
    customer.save()
    ref_set(system=source, object_type=ACCOUNT, external_id=external_id, canonical_type="customer", canonical_id=customer.pk)
    if decision.outcome == "new":
        match = CustomerMatch.objects.create(**common, outcome=CustomerMatch.Outcome.NEW, customer=customer)
        return Resolution(customer, "new", match)
    candidates = Customer.objects.in_bulk([c.customer_id for c in decision.considered[:10]])
    match = CustomerMatch.objects.create(
        **common,
        outcome=CustomerMatch.Outcome.REVIEW,
        error_class=decision.error_class,
        customer=customer,
        candidate_id=best.customer_id,
        candidates=_candidates_json(decision, candidates),
    )
    audit_record(
        object_type="customer",
        object_id=customer.pk,
        action="match_review",
        after={"candidate": str(best.customer_id), "score": best.score, "error_class": decision.error_class, "match": match.pk},
        note="; ".join(decision.reasons),
        correlation_id=flow_run.correlation_id if flow_run else None,
    )
    return Resolution(customer, "review", match)


def review_message(match: CustomerMatch) -> str:
    """The exception's message: what the two records share, and what a person must decide."""
    record_name = match.record.get("name") or match.external_id
    candidate = match.candidate
    agree = {e["field"]: e for e in match.evidence if e["comparison"] == "same"}
    shared = []
    if "tax_id" in agree:
        shared.append(f"tax id {match.record.get('keys', {}).get('tax_id') or agree['tax_id']['a']}")
    if "external_id" in agree:
        shared.append("a cross-system id")
    if "email_domain" in agree:
        shared.append(f"email domain {agree['email_domain']['a']}")
    if "name" in agree:
        shared.append("the same name (ignoring case, punctuation and legal suffix)")
    what = "Master-data conflict" if match.error_class == "conflict" else "Possible duplicate customer"
    share = f" share {', '.join(shared)}" if shared else " look alike"
    return (
        f"{what}: {match.system} {match.object_type} {match.external_id} “{record_name}” and customer “{candidate.name if candidate else '?'}”{share}"
        f" (score {match.score}). Merge them, or keep them separate."
    )
