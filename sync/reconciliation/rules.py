"""The reconciliation rule set: ordered, named rules, versioned in ReconciliationRuleSet.

A rule is a dict with `name` (unique), `order` (evaluated low to high) and `kind`:

- ``match``      how records of a document pair up across systems: by exact keys (external
                 ids / document numbers). `cardinality` says how many records of each side one
                 match holds: "1:1" (an order, an invoice), "N:1" (several ERP payments applied
                 to one billing invoice: their sum is compared).
- ``suggest``    for records no exact key matched: candidates within the same `within` group
                 (the deal) scored on amount, currency and date; a unique candidate scoring at
                 least `confirm_at` is matched, one scoring at least `suggest_at` is shown for
                 review on the break (never confirmed by itself), below that nothing.
- ``tolerance``  compares one `field` (total, arr, paid) of a `document` between two `sides`:
                 equal within max(`abs`, `pct` % of the larger amount) — "X % but at least Y".
- ``timing``     the same document's dates in two `sides` may differ by at most `days`.
- ``grace``      a document younger than `hours` that is not yet in the other system is
                 pending, not a break (posting takes a moment).
- ``status``     whether the `document`'s status is compared between `sides` (`enabled`).

Comparisons without a rule are exact. Validation errors name the rule and field.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.db import transaction

from sync.audit import audit_record
from sync.models import ReconciliationRuleSet

KINDS = {"match", "suggest", "tolerance", "timing", "grace", "status"}
DOCUMENTS = {"order", "invoice", "payment"}
ROLES = {"crm", "billing", "erp"}
FIELDS = {"total", "arr", "paid"}
CARDINALITIES = {"1:1", "1:N", "N:1"}

DEFAULT_RULES: list[dict] = [
    {"name": "orders by order number", "order": 10, "kind": "match", "document": "order", "keys": ["order_number"], "cardinality": "1:1"},
    {"name": "invoices by invoice number", "order": 20, "kind": "match", "document": "invoice", "keys": ["invoice_number"], "cardinality": "1:1"},
    {"name": "payments applied per invoice", "order": 30, "kind": "match", "document": "payment", "keys": ["invoice_number"], "cardinality": "N:1"},
    {
        "name": "invoices by deal, amount and date",
        "order": 40,
        "kind": "suggest",
        "document": "invoice",
        "within": "deal_id",
        "days": 7,
        "confirm_at": "0.95",
        "suggest_at": "0.5",
    },
    {
        "name": "contract value: CRM vs billing ARR",
        "order": 100,
        "kind": "tolerance",
        "document": "order",
        "field": "arr",
        "sides": ["crm", "billing"],
        "abs": "1.00",
        "pct": "0",
    },
    {
        "name": "order total: CRM vs ERP",
        "order": 110,
        "kind": "tolerance",
        "document": "order",
        "field": "total",
        "sides": ["crm", "erp"],
        "abs": "0.01",
        "pct": "0",
    },
    {
        "name": "invoice total: billing vs ERP",
        "order": 120,
        "kind": "tolerance",
        "document": "invoice",
        "field": "total",
        "sides": ["billing", "erp"],
        "abs": "0.01",
        "pct": "0",
    },
    {
        "name": "payments: billing paid vs ERP applied",
        "order": 130,
        "kind": "tolerance",
        "document": "payment",
        "field": "paid",
        "sides": ["billing", "erp"],
        "abs": "0.01",
        "pct": "0",
    },
    {"name": "invoice dates", "order": 140, "kind": "timing", "document": "invoice", "sides": ["billing", "erp"], "days": 3},
    {"name": "contract status vs subscription status", "order": 150, "kind": "status", "document": "order", "sides": ["crm", "billing"], "enabled": True},
    {"name": "invoice status", "order": 160, "kind": "status", "document": "invoice", "sides": ["billing", "erp"], "enabled": True},
    {"name": "posting grace", "order": 200, "kind": "grace", "hours": 2},
]


class RuleError(ValueError):
    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def _decimal(value, where: str, errors: list[dict], minimum: Decimal = Decimal(0), maximum: Decimal | None = None) -> None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        errors.append({"field": where, "message": f"{value!r} is not a number"})
        return
    if not number.is_finite() or number < minimum or (maximum is not None and number > maximum):
        errors.append({"field": where, "message": f"{value} is out of range"})


def validate(rules) -> list[dict]:
    """The rules, checked and sorted by order; RuleError listing every problem."""
    errors: list[dict] = []
    if not isinstance(rules, list) or not rules:
        raise RuleError([{"field": "rules", "message": "a non-empty list of rules is required"}])
    names: set[str] = set()
    for i, rule in enumerate(rules):
        at = f"rules[{i}]"
        if not isinstance(rule, dict):
            errors.append({"field": at, "message": "a rule is an object"})
            continue
        name, kind = rule.get("name"), rule.get("kind")
        if not name or not isinstance(name, str):
            errors.append({"field": f"{at}.name", "message": "every rule needs a name"})
        elif name in names:
            errors.append({"field": f"{at}.name", "message": f"the name {name!r} is used twice"})
        names.add(name)
        if not isinstance(rule.get("order"), int):
            errors.append({"field": f"{at}.order", "message": "an integer order is required"})
        if kind not in KINDS:
            errors.append({"field": f"{at}.kind", "message": f"one of {', '.join(sorted(KINDS))}"})
            continue
        if kind != "grace" and rule.get("document") not in DOCUMENTS:
            errors.append({"field": f"{at}.document", "message": f"one of {', '.join(sorted(DOCUMENTS))}"})
        sides = rule.get("sides")
        if kind in ("tolerance", "timing", "status") and (not isinstance(sides, list) or len(sides) != 2 or not set(sides) <= ROLES):
            errors.append({"field": f"{at}.sides", "message": "two of crm, billing, erp"})
        if kind == "match":
            if not rule.get("keys"):
                errors.append({"field": f"{at}.keys", "message": "at least one key"})
            if rule.get("cardinality", "1:1") not in CARDINALITIES:
                errors.append({"field": f"{at}.cardinality", "message": f"one of {', '.join(sorted(CARDINALITIES))}"})
        elif kind == "tolerance":
            if rule.get("field") not in FIELDS:
                errors.append({"field": f"{at}.field", "message": f"one of {', '.join(sorted(FIELDS))}"})
            _decimal(rule.get("abs", 0), f"{at}.abs", errors)
            _decimal(rule.get("pct", 0), f"{at}.pct", errors, maximum=Decimal(100))
        elif kind == "timing":
            _decimal(rule.get("days", 0), f"{at}.days", errors, maximum=Decimal(3650))
        elif kind == "grace":
            _decimal(rule.get("hours", 0), f"{at}.hours", errors, maximum=Decimal(24 * 60))
        elif kind == "suggest":
            _decimal(rule.get("confirm_at", 1), f"{at}.confirm_at", errors, maximum=Decimal(1))
            _decimal(rule.get("suggest_at", 1), f"{at}.suggest_at", errors, maximum=Decimal(1))
            _decimal(rule.get("days", 0), f"{at}.days", errors, maximum=Decimal(3650))
    if errors:
        raise RuleError(errors)
    return sorted(rules, key=lambda r: r["order"])


def active_rule_set(name: str = "default") -> ReconciliationRuleSet:
    """The active version of a rule set; version 1 holds DEFAULT_RULES when none was saved."""
    found = ReconciliationRuleSet.objects.filter(name=name, is_active=True).order_by("-version").first()
    if found is not None:
        return found
    with transaction.atomic():
        found, _ = ReconciliationRuleSet.objects.get_or_create(name=name, version=1, defaults={"rules": DEFAULT_RULES, "note": "the defaults"})
    return found


def save_rule_set(rules: list[dict], *, user=None, note: str = "", name: str = "default") -> ReconciliationRuleSet:
    """A new version of the set (the old ones stay, for the runs that used them). Audited."""
    checked = validate(rules)
    with transaction.atomic():
        current = active_rule_set(name)
        latest = ReconciliationRuleSet.objects.select_for_update().filter(name=name).order_by("-version").first()
        ReconciliationRuleSet.objects.filter(name=name, is_active=True).update(is_active=False)
        saved = ReconciliationRuleSet.objects.create(name=name, version=latest.version + 1, rules=checked, note=note[:500], created_by=user)
        audit_record(
            object_type="reconciliation_rules",
            object_id=saved.pk,
            action="update",
            before={"version": current.version, "rules": current.rules},
            after={"version": saved.version, "rules": checked},
            user=user,
            note=note[:500],
        )
    return saved


class Rules:
    """The rule set as the engine reads it."""

    def __init__(self, rules: list[dict]):
        self.rules = validate(rules)

    def of(self, kind: str, document: str | None = None) -> list[dict]:
        return [r for r in self.rules if r["kind"] == kind and (document is None or r.get("document") == document)]

    def tolerance(self, document: str, field: str, sides: tuple[str, str]) -> dict:
        for rule in self.of("tolerance", document):
            if rule["field"] == field and set(rule["sides"]) == set(sides):
                return rule
        return {"name": f"{document} {field} (exact)", "abs": "0", "pct": "0"}

    def within(self, document: str, field: str, sides: tuple[str, str], a: Decimal, b: Decimal) -> tuple[bool, str]:
        rule = self.tolerance(document, field, sides)
        allowed = max(Decimal(str(rule.get("abs", 0))), max(abs(a), abs(b)) * Decimal(str(rule.get("pct", 0))) / 100)
        return abs(a - b) <= allowed, rule["name"]

    def timing_days(self, document: str, sides: tuple[str, str]) -> tuple[Decimal | None, str]:
        for rule in self.of("timing", document):
            if set(rule["sides"]) == set(sides):
                return Decimal(str(rule.get("days", 0))), rule["name"]
        return None, ""

    def status_rule(self, document: str, sides: tuple[str, str]) -> str:
        for rule in self.of("status", document):
            if set(rule["sides"]) == set(sides) and rule.get("enabled", True):
                return rule["name"]
        return ""

    def grace_hours(self) -> Decimal:
        rules = self.of("grace")
        return Decimal(str(rules[0].get("hours", 0))) if rules else Decimal(0)

    def match_rule(self, document: str) -> dict:
        rules = self.of("match", document)
        return rules[0] if rules else {"name": f"{document} by number", "cardinality": "1:1"}

    def suggest_rule(self, document: str) -> dict | None:
        rules = self.of("suggest", document)
        return rules[0] if rules else None
