"""Scoring one pair of customer records, and deciding the outcome for an arriving record.

Pure: takes Profiles (sync/customers/normalise.py) and the thresholds, returns evidence per
field, a 0–100 score and the outcome with its reasons. docs/CUSTOMER_MATCHING.md explains
the rules; the thresholds and weights are settings.CUSTOMER_MATCHING.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rapidfuzz import fuzz

from .normalise import Profile, name_numbers

# keys whose agreement alone says "the same legal party" (a valid tax id, an id the other system gave)
STRONG_KEYS = frozenset({"tax_id", "external_id"})
# keys whose disagreement says "not the same legal party": never linked without a person
VETO_KEYS = frozenset({"tax_id", "external_id", "country"})

LABELS = {"name": "Name", "tax_id": "Tax id", "external_id": "Cross-system id", "email_domain": "Email domain", "country": "Country"}


@dataclass(frozen=True)
class FieldEvidence:
    field: str
    a: str  # what the arriving record says (as received)
    b: str  # what the candidate says
    comparison: str  # same | similar | different | missing | not a key
    score: float | None  # 0–100, None when the field does not count
    weight: float
    detail: str = ""

    @property
    def label(self) -> str:
        return LABELS.get(self.field, self.field)

    def as_dict(self) -> dict:
        return {
            "field": self.field,
            "label": self.label,
            "a": self.a,
            "b": self.b,
            "comparison": self.comparison,
            "score": None if self.score is None else round(self.score, 1),
            "weight": self.weight,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class PairScore:
    score: float
    fields: tuple[FieldEvidence, ...]
    agree: frozenset[str]  # exact keys that agree
    disagree: frozenset[str]  # keys present on both sides that differ

    @property
    def strong(self) -> bool:
        return bool(self.agree & STRONG_KEYS)


def name_similarity(a_key: str, b_key: str, *, number_cap: float) -> tuple[float, str]:
    """token_sort_ratio of the normalised names; names whose numbers differ are capped."""
    if not a_key or not b_key:
        return 0.0, "a name is empty"
    score = float(fuzz.token_sort_ratio(a_key, b_key))
    a_num, b_num = name_numbers(a_key), name_numbers(b_key)
    if (a_num or b_num) and sorted(a_num) != sorted(b_num) and score > number_cap:
        return number_cap, f"the numbers in the names differ ({' '.join(a_num) or 'none'} / {' '.join(b_num) or 'none'})"
    if a_key == b_key:
        return score, "identical after normalising (case, punctuation, accents, legal suffix)"
    return score, ""


def score_pair(a: Profile, b: Profile, *, weights: dict[str, float], number_cap: float) -> PairScore:
    """a = the arriving record, b = a canonical customer. Fields missing on either side do not count."""
    out: list[FieldEvidence] = []
    agree: set[str] = set()
    disagree: set[str] = set()

    name_score, detail = name_similarity(a.name_key, b.name_key, number_cap=number_cap)
    comparison = "same" if a.name_key and a.name_key == b.name_key else ("similar" if name_score >= 80 else "different")
    out.append(FieldEvidence("name", a.name, b.name, comparison, name_score, weights["name"], detail or f"“{a.name_key}” vs “{b.name_key}”"))

    # tax id: only valid ids are keys
    ta, tb = a.tax, b.tax
    if ta and tb and ta.valid and tb.valid:
        same = ta.key == tb.key
        (agree if same else disagree).add("tax_id")
        out.append(
            FieldEvidence(
                "tax_id", ta.raw, tb.raw, "same" if same else "different", 100.0 if same else 0.0, weights["tax_id"], f"{ta.key} / {tb.key} ({ta.scheme})"
            )
        )
    elif ta or tb:
        problems = "; ".join(p for p in ((ta.problem if ta else "none given"), (tb.problem if tb else "none given")) if p)
        out.append(FieldEvidence("tax_id", ta.raw if ta else "", tb.raw if tb else "", "not a key", None, weights["tax_id"], problems))

    # cross-system ids: the record claims an id another system gave; the candidate holds one
    systems_a = {(s, t): e for s, t, e in a.refs}
    systems_b: dict[tuple[str, str], set[str]] = {}
    for s, t, e in b.refs:
        systems_b.setdefault((s, t), set()).add(e)
    shared = [(k, e) for k, e in systems_a.items() if k in systems_b]
    if shared:
        hits = [f"{k[0]} {k[1]} {e}" for k, e in shared if e in systems_b[k]]
        misses = [f"{k[0]} {k[1]} {e} ≠ {', '.join(sorted(systems_b[k]))}" for k, e in shared if e not in systems_b[k]]
        if hits:
            agree.add("external_id")
        elif misses:
            disagree.add("external_id")
        score = 100.0 if hits else 0.0
        out.append(
            FieldEvidence(
                "external_id",
                ", ".join(f"{k[0]} {e}" for k, e in shared),
                ", ".join(f"{k[0]} {', '.join(sorted(systems_b[k]))}" for k, _ in shared),
                "same" if hits else "different",
                score,
                weights["tax_id"],
                "; ".join(hits or misses),
            )
        )

    da, db = a.domain, b.domain
    if da and db and not da.free and not db.free:
        same = da.domain == db.domain
        if same:
            agree.add("email_domain")
        out.append(FieldEvidence("email_domain", da.domain, db.domain, "same" if same else "different", 100.0 if same else 0.0, weights["email_domain"]))
    elif da or db:
        free = [d.domain for d in (da, db) if d and d.free]
        out.append(
            FieldEvidence(
                "email_domain",
                da.domain if da else "",
                db.domain if db else "",
                "not a key",
                None,
                weights["email_domain"],
                f"free-mail or placeholder domain: {', '.join(free)}" if free else "missing on one side",
            )
        )

    if a.country and b.country:
        same = a.country == b.country
        if not same:
            disagree.add("country")
        out.append(FieldEvidence("country", a.country, b.country, "same" if same else "different", 100.0 if same else 0.0, weights["country"]))

    counted = [f for f in out if f.score is not None]
    total_weight = sum(f.weight for f in counted)
    score = sum(f.score * f.weight for f in counted) / total_weight if total_weight else 0.0
    return PairScore(round(score, 1), tuple(out), frozenset(agree), frozenset(disagree))


@dataclass
class Candidate:
    customer_id: object
    profile: Profile
    pair: PairScore
    # the customer already has a record of the arriving record's own system and object type
    # (another Salesforce Account): linking would merge two records of one system
    same_system_refs: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        return self.pair.score


@dataclass
class Decision:
    outcome: str  # "new" | "auto_linked" | "review"
    error_class: str = ""  # "conflict" (a strong key agrees) | "duplicate" (similar only), for review
    best: Candidate | None = None
    considered: list[Candidate] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def decide(candidates: list[Candidate], *, auto_link: float, review: float) -> Decision:
    """Three outcomes. A candidate is considered when it scores at least `review` or a strong key
    (valid tax id, cross-system id) agrees — a shared valid tax id never silently makes a second
    customer. The best one is linked automatically only when all of these hold:
    score ≥ auto_link, it is the only one considered, at least one key agrees, no key disagrees
    (tax id, cross-system id, country), and the customer has no other record of the same system."""
    considered = sorted((c for c in candidates if c.score >= review or c.pair.strong), key=lambda c: (-c.score, str(c.customer_id)))
    if not considered:
        return Decision("new", reasons=[f"no candidate scored {review:g} or more and no tax id or cross-system id agreed"])
    best = considered[0]
    reasons = []
    if best.score < auto_link:
        reasons.append(f"score {best.score:g} is below the auto-link threshold {auto_link:g}")
    if len(considered) > 1:
        reasons.append(f"{len(considered)} candidates: the match is not unique")
    if not best.pair.agree:
        reasons.append("no key (tax id, cross-system id, company email domain) agrees: a name alone never links")
    if best.pair.disagree:
        reasons.append(f"{', '.join(LABELS[k].lower() for k in sorted(best.pair.disagree))} differ")
    if best.same_system_refs:
        reasons.append(f"the customer already has another record in the same system ({', '.join(best.same_system_refs)}): merging two of them needs a person")
    if not reasons:
        return Decision("auto_linked", best=best, considered=considered, reasons=[f"score {best.score:g} ≥ {auto_link:g}, unique, keys agree"])
    return Decision("review", error_class="conflict" if best.pair.strong else "duplicate", best=best, considered=considered, reasons=reasons)
