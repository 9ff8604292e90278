"""The subset of SuiteQL the connector issues, run against the sandbox's tables.

Grammar (keywords and names case-insensitive):

    SELECT * | expr [[AS] alias], …  FROM table
        [WHERE cond AND cond …]  [ORDER BY name [ASC|DESC], …]
    expr  := column | TO_CHAR(column, 'format')
    cond  := column op value | column IN (value, …) | column IS [NOT] NULL     op: = != <> > >= < <=
    value := 'text' | number | TO_TIMESTAMP('text', 'format') | TO_DATE('text', 'format')

Tables: customer, transaction, item, subsidiary, currency (the columns below). Anything else
is refused with NetSuite's "Invalid search query" error, so a query that works here is
well-formed SuiteQL.

ASSUMPTIONS (labelled, easy to change): values come back as strings except amounts, which
are JSON numbers; a date/time column without TO_CHAR is shown in the account's date format,
taken to be M/D/YYYY; TO_CHAR and TO_TIMESTAMP work in UTC (a real account uses its time zone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Case, CharField, DecimalField, F, Q, QuerySet, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from .models import Currency, Record, Subsidiary


class QueryError(ValueError):
    """Shown as: Invalid search query. … Search error occurred: <message>."""


# --- tables ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    expr: Any  # ORM expression
    kind: str = "text"  # text | number | datetime | date | id | bool


TRANSACTION_TYPES = {"salesOrder": "SalesOrd", "invoice": "CustInvc", "customerPayment": "CustPymt", "creditMemo": "CustCred"}
ITEM_TYPES = {"inventoryItem": "InvtPart", "nonInventorySaleItem": "NonInvtPart"}


def _type_case(mapping: dict[str, str]):
    return Case(*[When(record_type=k, then=Value(v)) for k, v in mapping.items()], output_field=CharField())


def _tables() -> dict[str, tuple[Callable[[], QuerySet], dict[str, Column]]]:
    record_common = {
        "id": Column(F("id"), "id"),
        "externalid": Column(F("external_id")),
        "lastmodifieddate": Column(F("last_modified"), "datetime"),
    }
    return {
        "customer": (
            lambda: Record.objects.filter(record_type="customer"),
            {
                **record_common,
                "entityid": Column(KT("data__entityId")),
                "companyname": Column(KT("data__companyName")),
                "email": Column(KT("data__email")),
                "subsidiary": Column(KT("data__subsidiary__id"), "id"),
                "currency": Column(KT("data__currency__id"), "id"),
                "isinactive": Column(KT("data__isInactive"), "bool"),
                "datecreated": Column(F("created_at"), "datetime"),
            },
        ),
        "transaction": (
            lambda: Record.objects.filter(record_type__in=TRANSACTION_TYPES),
            {
                **record_common,
                "type": Column(_type_case(TRANSACTION_TYPES)),
                "tranid": Column(KT("data__tranId")),
                "entity": Column(KT("data__entity__id"), "id"),
                "trandate": Column(KT("data__tranDate"), "date"),
                "duedate": Column(KT("data__dueDate"), "date"),
                "status": Column(KT("data__status__id")),
                "currency": Column(KT("data__currency__id"), "id"),
                "subsidiary": Column(KT("data__subsidiary__id"), "id"),
                "createdfrom": Column(KT("data__createdFrom__id"), "id"),
                "memo": Column(KT("data__memo")),
                "foreigntotal": Column(Cast(KT("data__total"), DecimalField(max_digits=24, decimal_places=6)), "number"),
                "foreignamountremaining": Column(Cast(KT("data__amountRemaining"), DecimalField(max_digits=24, decimal_places=6)), "number"),
                "createddate": Column(F("created_at"), "datetime"),
            },
        ),
        "item": (
            lambda: Record.objects.filter(record_type__in=ITEM_TYPES),
            {
                **record_common,
                "itemid": Column(KT("data__itemId")),
                "displayname": Column(KT("data__displayName")),
                "itemtype": Column(_type_case(ITEM_TYPES)),
                "isinactive": Column(KT("data__isInactive"), "bool"),
                "baseprice": Column(Cast(KT("data__basePrice"), DecimalField(max_digits=24, decimal_places=6)), "number"),
                "custitem_q2c_charge_type": Column(KT("data__custitem_q2c_charge_type")),
                "custitem_q2c_billing_interval": Column(KT("data__custitem_q2c_billing_interval")),
            },
        ),
        "subsidiary": (
            lambda: Subsidiary.objects.all(),
            {"id": Column(F("id"), "id"), "name": Column(F("name")), "country": Column(F("country")), "currency": Column(F("currency_id"), "id")},
        ),
        "currency": (
            lambda: Currency.objects.all(),
            {"id": Column(F("id"), "id"), "symbol": Column(F("symbol")), "name": Column(F("name"))},
        ),
    }


# --- tokens and parser -------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<op>>=|<=|!=|<>|=|>|<)"
    r"|(?P<punct>[(),*])|(?P<name>[A-Za-z_][A-Za-z0-9_.]*))"
)


def tokenize(q: str) -> list[tuple[str, str]]:
    tokens, pos, q = [], 0, q.strip().rstrip(";")
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise QueryError(f"Unexpected text at position {pos}: {q[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "string":
            value = value[1:-1].replace("''", "'")
        tokens.append((kind, value))
    return tokens


@dataclass
class Select:
    table: str
    columns: list[tuple[str, str, str | None]] = field(default_factory=list)  # (alias, column, to_char fmt)
    star: bool = False
    where: list[tuple] = field(default_factory=list)  # (column, op, value)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)


class _Parser:
    def __init__(self, q: str):
        self.tokens = tokenize(q)
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "name" and tok[1].upper() in words:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1].upper() != value):
            found = tok[1] if tok else "end of query"
            raise QueryError(f"Expected {value or kind} but found {found!r}")
        self.i += 1
        return tok[1]

    def parse(self) -> Select:
        if not self.keyword("SELECT"):
            raise QueryError("Only SELECT statements are supported")
        columns, star = [], False
        while True:
            if self.peek() == ("punct", "*"):
                self.i += 1
                star = True
            else:
                columns.append(self.select_item())
            if self.peek() != ("punct", ","):
                break
            self.i += 1
        if not self.keyword("FROM"):
            raise QueryError("Expected FROM")
        select = Select(table=self.expect("name").lower(), columns=columns, star=star)
        if self.keyword("WHERE"):
            select.where.append(self.condition())
            while self.keyword("AND"):
                select.where.append(self.condition())
        if self.keyword("ORDER"):
            self.expect("name", "BY")
            while True:
                column = self.expect("name").lower()
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                select.order.append((column, descending))
                if self.peek() != ("punct", ","):
                    break
                self.i += 1
        if self.peek() is not None:
            raise QueryError(f"Unexpected {self.peek()[1]!r}")
        return select

    def select_item(self) -> tuple[str, str, str | None]:
        name = self.expect("name")
        fmt = None
        if name.upper() == "TO_CHAR" and self.peek() == ("punct", "("):
            self.i += 1
            name = self.expect("name")
            self.expect("punct", ",")
            fmt = self.expect("string")
            self.expect("punct", ")")
            alias = f"expr{self.i}"
        else:
            alias = name
        if self.keyword("AS") or self.peek() and self.peek()[0] == "name" and self.peek()[1].upper() not in ("FROM",):
            alias = self.expect("name")
        return alias.lower(), name.lower(), fmt

    def condition(self) -> tuple:
        column = self.expect("name").lower()
        if self.keyword("IS"):
            negate = self.keyword("NOT")
            self.expect("name", "NULL")
            return column, "isnotnull" if negate else "isnull", None
        if self.keyword("IN"):
            self.expect("punct", "(")
            values = [self.value()]
            while self.peek() == ("punct", ","):
                self.i += 1
                values.append(self.value())
            self.expect("punct", ")")
            return column, "in", values
        op = self.expect("op")
        return column, op, self.value()

    def value(self):
        tok = self.peek()
        if tok is None:
            raise QueryError("Expected a value")
        if tok[0] == "string":
            self.i += 1
            return tok[1]
        if tok[0] == "number":
            self.i += 1
            return Decimal(tok[1])
        if tok[0] == "name" and tok[1].upper() in ("TO_TIMESTAMP", "TO_DATE"):
            func = tok[1].upper()
            self.i += 1
            self.expect("punct", "(")
            text = self.expect("string")
            self.expect("punct", ",")
            fmt = self.expect("string")
            self.expect("punct", ")")
            parsed = datetime.strptime(text, oracle_to_strftime(fmt))
            return parsed.replace(tzinfo=UTC) if func == "TO_TIMESTAMP" else parsed.date()
        raise QueryError(f"Unexpected {tok[1]!r}")


def parse(q: str) -> Select:
    return _Parser(q).parse()


_ORACLE = [("YYYY", "%Y"), ("HH24", "%H"), ("MM", "%m"), ("DD", "%d"), ("MI", "%M"), ("SS", "%S")]


def oracle_to_strftime(fmt: str) -> str:
    out, i = "", 0
    while i < len(fmt):
        if fmt[i] == '"':
            end = fmt.index('"', i + 1)
            out += fmt[i + 1 : end].replace("%", "%%")
            i = end + 1
            continue
        for token, directive in _ORACLE:
            if fmt[i : i + len(token)].upper() == token:
                out += directive
                i += len(token)
                break
        else:
            if fmt[i].isalpha():
                raise QueryError(f"Unsupported date format element in {fmt!r}")
            out += fmt[i]
            i += 1
    return out


# --- execution ---------------------------------------------------------------------------
def _coerce(column: Column, value):
    if value is None:
        return None
    if column.kind == "datetime":
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise QueryError(f"{value!r} is not a date/time") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if column.kind == "date":
        return value.isoformat() if isinstance(value, (date, datetime)) else str(value)
    if column.kind == "number":
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise QueryError(f"{value!r} is not a number") from exc
    if column.kind == "id" and isinstance(value, Decimal):
        return str(int(value))
    if column.kind == "bool":
        return "true" if str(value).upper() in ("T", "TRUE") else "false"
    return str(value)


_LOOKUPS = {"=": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def _render(column: Column, value, fmt: str | None):
    if value is None:
        return None
    if fmt:
        if isinstance(value, str):
            value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
        if isinstance(value, datetime):
            value = value.astimezone(UTC)
        return value.strftime(oracle_to_strftime(fmt))
    if column.kind == "datetime":
        value = value.astimezone(UTC)
        return f"{value.month}/{value.day}/{value.year}"
    if column.kind == "date":
        d = date.fromisoformat(str(value)[:10])
        return f"{d.month}/{d.day}/{d.year}"
    if column.kind == "number":
        value = Decimal(value)
        return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
    if column.kind == "bool":
        return "T" if str(value).lower() == "true" else "F"
    return str(value)


def run(q: str, *, limit: int, offset: int) -> tuple[list[dict], int]:
    """Rows of one page and the total number of results."""
    select = parse(q)
    tables = _tables()
    if select.table not in tables:
        raise QueryError(f"Record '{select.table}' was not found.")
    make_queryset, columns = tables[select.table]

    def col(name: str) -> Column:
        if name not in columns:
            raise QueryError(f"Field '{name}' for record '{select.table}' was not found.")
        return columns[name]

    wanted = [(name, name, None) for name in columns] if select.star else []
    wanted += select.columns
    used = {c for _, c, _ in wanted} | {c for c, _, _ in select.where} | {c for c, _ in select.order}
    qs = make_queryset().annotate(**{f"c_{name}": col(name).expr for name in sorted(used)})
    for name, op, value in select.where:
        column, ref = col(name), f"c_{name}"
        if op == "isnull":
            qs = qs.filter(**{f"{ref}__isnull": True})
        elif op == "isnotnull":
            qs = qs.filter(**{f"{ref}__isnull": False})
        elif op == "in":
            qs = qs.filter(**{f"{ref}__in": [_coerce(column, v) for v in value]})
        elif op in ("!=", "<>"):
            qs = qs.filter(~Q(**{ref: _coerce(column, value)}) | Q(**{f"{ref}__isnull": True}))
        else:
            qs = qs.filter(**{f"{ref}__{_LOOKUPS[op]}": _coerce(column, value)})
    ordering = [f"-c_{c}" if desc else f"c_{c}" for c, desc in select.order] + ["pk"]
    qs = qs.order_by(*ordering)
    total = qs.count()
    rows = []
    for values in qs.values(*{f"c_{c}" for _, c, _ in wanted})[offset : offset + limit]:
        rows.append({"links": [], **{alias: _render(columns[c], values[f"c_{c}"], fmt) for alias, c, fmt in wanted}})
    return rows, total
