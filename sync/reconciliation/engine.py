"""The comparison engine: a run's snapshot + a rule set → typed breaks, streamed.

The snapshot is read back in key order through a server-side cursor, one document (all
systems' records with its key) at a time, so memory holds one document plus the breaks not yet
written. Per document:

  order    CRM (the master) vs billing subscription (ARR, currency, status) vs ERP sales order
           (total, currency); present elsewhere but not in the CRM → missing_in_crm.
  invoice  billing (the master) vs ERP invoice (presence, total, currency, status, date) and the
           payments: billing's amount paid vs the sum of the ERP payments applied (N:1).

A record of a role twice under one key is a duplicate. What no exact key matched goes to the
`suggest` rule: a unique candidate in the same deal scoring at least `confirm_at` is matched,
one scoring at least `suggest_at` is put on both breaks for review.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import groupby

from django.db import connection

from sync.engine.money import to_reporting
from sync.models import ReconciliationBreak, ReconciliationRecord

from .rules import Rules

BT = ReconciliationBreak.BreakType
COLUMNS = ("kind", "key", "role", "deal_id", "ref", "account_ref", "account_name", "currency", "amount", "arr", "paid", "status", "doc_date", "changed_at")
LABEL = {"crm": "the CRM", "billing": "billing", "erp": "the ERP"}
CENT = Decimal("0.01")


@dataclass
class Found:
    """A break as the engine found it (written by runs.py, shown by dry_run.py)."""

    break_type: str
    document_type: str
    document_number: str
    system: str
    rule: str
    deal_id: str = ""
    account_name: str = ""
    currency: str = ""
    values: dict = field(default_factory=dict)  # role → value (document currency)
    sides: dict = field(default_factory=dict)  # role → {ref, value, currency, status, date}
    difference: Decimal | None = None
    value: Decimal = Decimal(0)  # document currency: what is at stake
    value_currency: str = ""
    document_date: date | None = None
    message: str = ""
    needs_review: bool = False
    suggestion: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.document_type}:{self.document_number}:{self.break_type}:{self.system}"[:200]

    def reporting(self) -> tuple[Decimal, Decimal | None]:
        value = to_reporting(abs(self.value), self.value_currency or self.currency)
        diff = to_reporting(abs(self.difference), self.currency) if self.difference is not None else None
        return value, diff


@dataclass
class Stats:
    documents: int = 0
    matched: int = 0
    pending: int = 0
    suggested: int = 0
    customers: set = field(default_factory=set)


def _side(rec: dict, value_field: str) -> dict:
    return {
        "ref": rec["ref"],
        "value": str(rec[value_field]) if rec.get(value_field) is not None else None,
        "currency": rec["currency"],
        "status": rec["status"],
        "date": rec["doc_date"].isoformat() if rec.get("doc_date") else None,
    }


def _invoice_break(break_type, key: str, rule, base: dict, b: dict, e: dict, message: str) -> Found:
    """A break of one invoice between billing (`b`) and the ERP (`e`) valued at the billed amount."""
    return Found(
        break_type,
        "invoice",
        key,
        "erp",
        rule,
        **base,
        values={"billing": b["amount"], "erp": e["amount"]},
        sides={"billing": _side(b, "amount"), "erp": _side(e, "amount")},
        value=Decimal(b["amount"] or 0),
        message=message,
    )


def _money(value, currency: str) -> str:
    return f"{Decimal(value or 0).quantize(CENT)} {currency}".strip()


class Comparer:
    def __init__(self, rules: Rules, *, as_of: datetime):
        self.rules = rules
        self.as_of = as_of
        self.grace = timedelta(hours=float(rules.grace_hours()))
        self.stats = Stats()
        self.unmatched: dict[str, list[Found]] = defaultdict(list)  # deal → missing invoices, for the suggest rule
        self.unmatched_records: dict[int, dict] = {}

    def _pending(self, rec: dict) -> bool:
        return bool(self.grace and rec.get("changed_at") and self.as_of - rec["changed_at"] < self.grace)

    def _dupes(self, document_type: str, key: str, sides: dict, fields: dict) -> Iterator[Found]:
        for role, recs in sides.items():
            value_field = fields.get(role, "amount")
            if len(recs) > 1:
                extra = sum((Decimal(r.get(value_field) or 0) for r in recs[1:]), Decimal(0))
                first = recs[0]
                yield Found(
                    BT.DUPLICATE,
                    document_type,
                    key,
                    role,
                    self.rules.match_rule(document_type)["name"],
                    deal_id=first["deal_id"],
                    account_name=first["account_name"],
                    currency=first["currency"],
                    values={role: extra},
                    sides={f"{role}#{i + 1}": _side(r, value_field) for i, r in enumerate(recs)},
                    value=extra,
                    document_date=first.get("doc_date"),
                    message=f"{LABEL[role].capitalize()} holds {document_type} {key} {len(recs)} times ({', '.join(r['ref'] for r in recs)}).",
                )

    def _amount(self, document_type, key, field_name, a_role, a, b_role, b, base: dict) -> Iterator[Found]:
        if a["currency"] != b["currency"]:
            yield Found(
                BT.CURRENCY_MISMATCH,
                document_type,
                key,
                b_role,
                f"{document_type} by number",
                **base,
                values={a_role: a.get(field_name), b_role: b.get(field_name)},
                sides={a_role: _side(a, field_name), b_role: _side(b, field_name)},
                value=Decimal(a.get(field_name) or 0),
                value_currency=a["currency"],
                message=f"{document_type.capitalize()} {key} is in {a['currency']} in {LABEL[a_role]} and in {b['currency'] or 'no currency'} in {LABEL[b_role]}.",
            )
            return
        av, bv = a.get(field_name), b.get(field_name)
        if av is None or bv is None:
            return
        ok, rule = self.rules.within("payment" if field_name == "paid" else document_type, field_name, (a_role, b_role), Decimal(av), Decimal(bv))
        if not ok:
            what = {"arr": "annual value", "total": "total", "paid": "amount paid"}[field_name]
            yield Found(
                BT.AMOUNT_MISMATCH,
                "payment" if field_name == "paid" else document_type,
                key,
                b_role,
                rule,
                **base,
                values={a_role: Decimal(av), b_role: Decimal(bv)},
                sides={a_role: _side(a, field_name), b_role: _side(b, field_name)},
                difference=Decimal(bv) - Decimal(av),
                value=Decimal(bv) - Decimal(av),
                message=f"{document_type.capitalize()} {key} {what}: {_money(av, a['currency'])} in {LABEL[a_role]}, {_money(bv, b['currency'])} in {LABEL[b_role]}.",
            )

    def _missing(self, break_type, document_type, key, system, present_role, rec, value_field, base) -> Found:
        value = Decimal(rec.get(value_field) or 0)
        where = {BT.MISSING_IN_CRM: "the CRM", BT.MISSING_IN_BILLING: "billing", BT.MISSING_IN_ERP: "the ERP"}[break_type]
        return Found(
            break_type,
            document_type,
            key,
            system,
            self.rules.match_rule(document_type)["name"],
            **base,
            values={present_role: value},
            sides={present_role: _side(rec, value_field)},
            value=value,
            message=f"{document_type.capitalize()} {key} is in {LABEL[present_role]} ({_money(value, rec['currency'])}) but not in {where}.",
        )

    # --- documents ------------------------------------------------------------------------
    def order(self, key: str, sides: dict) -> list[Found]:
        out: list[Found] = []
        crm, billing, erp = sides.get("crm", []), sides.get("billing", []), sides.get("erp", [])
        out.extend(self._dupes("order", key, {"crm": crm, "billing": billing, "erp": erp}, {"billing": "arr"}))
        c = crm[0] if crm else None
        b = billing[0] if billing else None
        e = erp[0] if erp else None
        first = c or b or e
        base = {
            "deal_id": first["deal_id"] or key,
            "account_name": first["account_name"],
            "currency": first["currency"],
            "document_date": first.get("doc_date"),
        }
        if c is None:
            present, rec, field_name = ("erp", e, "amount") if e else ("billing", b, "arr")
            out.append(self._missing(BT.MISSING_IN_CRM, "order", key, "crm", present, rec, field_name, base))
            return out
        self.stats.customers.add(c["account_ref"])
        pending = False
        if b is None:
            if c.get("arr") and c.get("status") == "live":
                if self._pending(c):
                    pending = True
                else:
                    out.append(self._missing(BT.MISSING_IN_BILLING, "order", key, "billing", "crm", c, "arr", base))
        else:
            out.extend(self._amount("order", key, "arr", "crm", c, "billing", b, base))
            rule = self.rules.status_rule("order", ("crm", "billing"))
            if rule and c["status"] != b["status"]:
                out.append(
                    Found(
                        BT.STATUS_MISMATCH,
                        "order",
                        key,
                        "billing",
                        rule,
                        **base,
                        values={"crm": c.get("arr"), "billing": b.get("arr")},
                        sides={"crm": _side(c, "arr"), "billing": _side(b, "arr")},
                        value=Decimal(c.get("arr") or 0),
                        message=f"Order {key}: the contract is {c['status']} in the CRM but the subscription is {b['status']} in billing.",
                    )
                )
        if e is None:
            if self._pending(c):
                pending = True
            else:
                out.append(self._missing(BT.MISSING_IN_ERP, "order", key, "erp", "crm", c, "amount", base))
        else:
            out.extend(self._amount("order", key, "total", "crm", {**c, "total": c["amount"]}, "erp", {**e, "total": e["amount"]}, base))
        self._count(out, pending)
        return out

    def invoice(self, key: str, sides: dict) -> list[Found]:
        out: list[Found] = []
        billing, erp = sides.get("billing", []), sides.get("erp", [])
        out.extend(self._dupes("invoice", key, {"billing": billing, "erp": erp}, {}))
        b = billing[0] if billing else None
        e = erp[0] if erp else None
        first = b or e
        base = {"deal_id": first["deal_id"], "account_name": first["account_name"], "currency": first["currency"], "document_date": first.get("doc_date")}
        if b is None:
            found = self._missing(BT.MISSING_IN_BILLING, "invoice", key, "billing", "erp", e, "amount", base)
            self._hold(found, e, "erp")
            out.append(found)
            return out
        if e is None:
            if self._pending(b):
                self._count(out, True)
                return out
            found = self._missing(BT.MISSING_IN_ERP, "invoice", key, "erp", "billing", b, "amount", base)
            self._hold(found, b, "billing")
            out.append(found)
            return out
        bt, et = {**b, "total": b["amount"]}, {**e, "total": e["amount"]}
        amounts = list(self._amount("invoice", key, "total", "billing", bt, "erp", et, base))
        out.extend(amounts)
        paid = [] if amounts else list(self._amount("invoice", key, "paid", "billing", b, "erp", e, base))
        out.extend(paid)
        rule = self.rules.status_rule("invoice", ("billing", "erp"))
        if rule and not paid and not amounts and b["status"] != e["status"]:
            out.append(_invoice_break(BT.STATUS_MISMATCH, key, rule, base, b, e, f"Invoice {key} is {b['status']} in billing but {e['status']} in the ERP."))
        days, rule = self.rules.timing_days("invoice", ("billing", "erp"))
        if days is not None and b.get("doc_date") and e.get("doc_date"):
            apart = abs((e["doc_date"] - b["doc_date"]).days)
            if apart > days:
                message = f"Invoice {key} is dated {b['doc_date']} in billing and {e['doc_date']} in the ERP ({apart} days apart)."
                out.append(_invoice_break(BT.TIMING, key, rule, base, b, e, message))
        self._count(out, False)
        return out

    def _count(self, found: list[Found], pending: bool) -> None:
        if pending:
            self.stats.pending += 1
        elif not found:
            self.stats.matched += 1

    def _hold(self, found: Found, rec: dict, role: str) -> None:
        if self.rules.suggest_rule("invoice") and found.deal_id:
            found.sides[role] = {**found.sides[role], "_amount": rec["amount"], "_date": rec.get("doc_date")}
            self.unmatched[found.deal_id].append(found)

    # --- the suggest rule -------------------------------------------------------------------
    def suggestions(self, held: list[Found]) -> set[str]:
        """Pair missing-in-ERP with missing-in-billing invoices of the same deal. Returns the keys
        of breaks a confident unique match absorbed; marks the others for review."""
        rule = self.rules.suggest_rule("invoice")
        absorbed: set[str] = set()
        if not rule:
            return absorbed
        confirm, suggest, days = Decimal(str(rule["confirm_at"])), Decimal(str(rule["suggest_at"])), Decimal(str(rule.get("days", 7))) or Decimal(1)
        for _deal, found in self.unmatched.items():
            in_billing = [f for f in found if f.break_type == BT.MISSING_IN_ERP]
            in_erp = [f for f in found if f.break_type == BT.MISSING_IN_BILLING]
            for left in in_billing:
                scored = []
                a = left.sides["billing"]
                for right in in_erp:
                    b = right.sides["erp"]
                    if a["currency"] != b["currency"] or right.key in absorbed:
                        continue
                    x, y = Decimal(a["_amount"] or 0), Decimal(b["_amount"] or 0)
                    amount_score = 1 - min(Decimal(1), abs(x - y) / max(abs(x), abs(y), Decimal(1)))
                    apart = abs((a["_date"] - b["_date"]).days) if a["_date"] and b["_date"] else days
                    date_score = 1 - min(Decimal(1), Decimal(apart) / days)
                    scored.append(((amount_score * Decimal("0.7") + date_score * Decimal("0.3")).quantize(CENT), right))
                scored.sort(key=lambda s: s[0], reverse=True)
                if not scored:
                    continue
                score, right = scored[0]
                unique = len(scored) == 1 or scored[1][0] < score
                if score >= confirm and unique:
                    absorbed.update({left.key, right.key})
                    self.stats.matched += 1
                elif score >= suggest:
                    for one, other in ((left, right), (right, left)):
                        one.needs_review = True
                        one.suggestion = {"document_number": other.document_number, "confidence": str(score), "rule": rule["name"], "ambiguous": not unique}
                    self.stats.suggested += 1
        for found in held:
            for side in found.sides.values():
                side.pop("_amount", None)
                side.pop("_date", None)
        return absorbed


def snapshot_rows(run_id: int, chunk: int = 2000) -> Iterator[dict]:
    """The run's order and invoice records in (kind, key, role) order, through a server-side cursor."""
    table = ReconciliationRecord._meta.db_table
    sql = f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE run_id = %s AND kind IN ('order', 'invoice') ORDER BY kind, key, role, id"
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, [run_id])
        while True:
            rows = cursor.fetchmany(chunk)
            if not rows:
                return
            for row in rows:
                yield dict(zip(COLUMNS, row, strict=True))


def compare(run_id: int, rules: Rules, *, as_of: datetime) -> tuple[Iterator[Found], Comparer]:
    """Breaks of one snapshot, streamed; the comparer's stats are complete once it is exhausted.
    Breaks the suggest rule holds (missing invoices) come at the end, after pairing."""
    comparer = Comparer(rules, as_of=as_of)

    def run() -> Iterator[Found]:
        held: list[Found] = []
        for (kind, key), group in groupby(snapshot_rows(run_id), key=lambda r: (r["kind"], r["key"])):
            sides: dict[str, list[dict]] = defaultdict(list)
            for rec in group:
                sides[rec["role"]].append(rec)
            comparer.stats.documents += 1
            found = comparer.order(key, sides) if kind == "order" else comparer.invoice(key, sides)
            for one in found:
                if (
                    one.document_type == "invoice"
                    and one.break_type in (BT.MISSING_IN_ERP, BT.MISSING_IN_BILLING)
                    and one.deal_id
                    and comparer.rules.suggest_rule("invoice")
                ):
                    held.append(one)
                else:
                    yield one
        absorbed = comparer.suggestions(held)
        for one in held:
            if one.key not in absorbed:
                yield one

    return run(), comparer
