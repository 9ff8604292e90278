"""A small SOQL parser and evaluator for the sandbox.

Supported: SELECT f1, Parent.Field, COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], …] [LIMIT n] [OFFSET n], where cond combines `field op literal` with
AND / OR / NOT and parentheses; op is = != <> < <= > >= LIKE IN NOT IN (INCLUDES/EXCLUDES
are not). Literals: 'strings' (backslash escapes), numbers, true/false/null, date
(2026-01-31), datetime (2026-01-31T10:00:00Z, …+01:00, fractional seconds) and the date
literals TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n.

String comparisons are case-insensitive, as in SOQL. Ids compare on their first 15 chars.
Pure code: no database, no Django.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any


class SOQLError(Exception):
    def __init__(self, message: str, code: str = "MALFORMED_QUERY"):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Condition:
    field: str
    op: str
    value: Any


@dataclass
class BoolOp:
    op: str  # AND, OR, NOT
    items: list


@dataclass
class OrderBy:
    field: str
    descending: bool = False
    nulls_last: bool | None = None  # None: SOQL default (nulls first for ASC, last for DESC)


@dataclass
class Query:
    fields: list[str]
    sobject: str
    where: Any = None
    order_by: list[OrderBy] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    count_only: bool = False


KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "TRUE",
    "FALSE",
    "NULL",
}
NAME_LIKE_KEYWORDS = {"ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST", "LAST"}
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:\\.|[^'\\])*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::\d+)?)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\", "%": "\\%", "_": "\\_"}


def _tokens(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SOQLError(f"unexpected token: '{text[pos : pos + 20].strip()}'")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(1)), raw[1:-1])
            out.append(("string", value))
        elif kind == "datetime":
            out.append(("literal", parse_datetime(raw)))
        elif kind == "date":
            out.append(("literal", date.fromisoformat(raw)))
        elif kind == "number":
            out.append(("literal", Decimal(raw)))
        elif kind == "name" and raw.upper() in KEYWORDS:
            out.append(("kw", raw.upper(), raw))
        else:
            out.append((kind, raw))
    return out


def parse_datetime(raw: str) -> datetime:
    raw = raw.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", raw):
        raw = raw[:-2] + ":" + raw[-2:]
    return datetime.fromisoformat(raw)


def _date_literal(name: str, today: date) -> tuple[date, date] | None:
    upper = name.upper()
    if upper == "TODAY":
        return today, today
    if upper == "YESTERDAY":
        return today - timedelta(days=1), today - timedelta(days=1)
    if upper == "TOMORROW":
        return today + timedelta(days=1), today + timedelta(days=1)
    m = re.fullmatch(r"(LAST|NEXT)_N_DAYS:(\d+)", upper)
    if m:
        n = int(m.group(2))
        return (today - timedelta(days=n), today) if m.group(1) == "LAST" else (today, today + timedelta(days=n))
    return None


@dataclass
class DateRange:
    start: date
    end: date


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self, offset: int = 0):
        i = self.pos + offset
        return self.tokens[i][:2] if i < len(self.tokens) else (None, None)

    def take(self):
        if self.pos >= len(self.tokens):
            raise SOQLError("unexpected end of query")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def accept_kw(self, *words: str) -> bool:
        if self.peek()[0] == "kw" and self.peek()[1] in words:
            self.pos += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        kind, value = self.peek()
        if not (kind == "kw" and value == word):
            raise SOQLError(f"expecting '{word}', found '{value if value is not None else 'end of query'}'")
        self.pos += 1

    def name(self) -> str:
        tok = self.take()
        kind, value = tok[0], tok[1]
        if kind == "kw" and value in NAME_LIKE_KEYWORDS:  # `FROM Order`, a field called `Last`
            return tok[2]
        if kind != "name":
            raise SOQLError(f"unexpected token: '{value}'")
        return value

    def parse(self) -> Query:
        self.expect_kw("SELECT")
        fields, count_only = [], False
        while True:
            if self.peek() == ("name", "COUNT") or (self.peek()[0] == "name" and self.peek()[1].upper() == "COUNT" and self.peek(1) == ("punct", "(")):
                self.pos += 1
                if self.take()[:2] != ("punct", "(") or self.take()[:2] != ("punct", ")"):
                    raise SOQLError("only COUNT() is supported")
                count_only = True
            elif self.peek() == ("punct", "("):
                raise SOQLError("relationship subqueries are not supported by this sandbox")
            else:
                fields.append(self.name())
            if self.peek() == ("punct", ","):
                self.pos += 1
                continue
            break
        self.expect_kw("FROM")
        query = Query(fields=fields, sobject=self.name(), count_only=count_only)
        if self.accept_kw("WHERE"):
            query.where = self.or_expr()
        if self.accept_kw("ORDER"):
            self.expect_kw("BY")
            while True:
                item = OrderBy(self.name())
                if self.accept_kw("DESC"):
                    item.descending = True
                else:
                    self.accept_kw("ASC")
                if self.accept_kw("NULLS"):
                    if self.accept_kw("LAST"):
                        item.nulls_last = True
                    else:
                        self.expect_kw("FIRST")
                        item.nulls_last = False
                query.order_by.append(item)
                if self.peek() == ("punct", ","):
                    self.pos += 1
                    continue
                break
        if self.accept_kw("LIMIT"):
            query.limit = self.integer("LIMIT")
        if self.accept_kw("OFFSET"):
            query.offset = self.integer("OFFSET")
        if self.peek()[0] is not None:
            raise SOQLError(f"unexpected token: '{self.peek()[1]}'")
        if count_only and fields:
            raise SOQLError("COUNT() cannot be combined with other fields")
        return query

    def integer(self, what: str) -> int:
        kind, value = self.take()[:2]
        if kind != "literal" or not isinstance(value, Decimal) or value != value.to_integral() or value < 0:
            raise SOQLError(f"{what} must be a non-negative integer")
        return int(value)

    def or_expr(self):
        items = [self.and_expr()]
        while self.accept_kw("OR"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("OR", items)

    def and_expr(self):
        items = [self.not_expr()]
        while self.accept_kw("AND"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("AND", items)

    def not_expr(self):
        if self.accept_kw("NOT"):
            return BoolOp("NOT", [self.not_expr()])
        if self.peek() == ("punct", "("):
            self.pos += 1
            expr = self.or_expr()
            if self.take()[:2] != ("punct", ")"):
                raise SOQLError("expecting ')'")
            return expr
        return self.condition()

    def condition(self) -> Condition:
        name = self.name()
        kind, value = self.peek()
        if kind == "op":
            self.pos += 1
            op = "!=" if value == "<>" else value
            return Condition(name, op, self.literal())
        if self.accept_kw("LIKE"):
            return Condition(name, "LIKE", self.literal())
        negate = self.accept_kw("NOT")
        if self.accept_kw("IN"):
            if self.take()[:2] != ("punct", "("):
                raise SOQLError("expecting '(' after IN")
            values = [self.literal()]
            while self.peek() == ("punct", ","):
                self.pos += 1
                values.append(self.literal())
            if self.take()[:2] != ("punct", ")"):
                raise SOQLError("expecting ')'")
            return Condition(name, "NOT IN" if negate else "IN", values)
        raise SOQLError(f"unexpected token: '{value}'")

    def literal(self):
        kind, value = self.take()[:2]
        if kind in ("string", "literal"):
            return value
        if kind == "kw" and value in ("TRUE", "FALSE"):
            return value == "TRUE"
        if kind == "kw" and value == "NULL":
            return None
        if kind == "name":
            found = _date_literal(value, datetime.now(UTC).date())
            if found:
                return DateRange(*found)
        raise SOQLError(f"unexpected token: '{value}'")


def parse(text: str) -> Query:
    if not text or not text.strip():
        raise SOQLError("query is empty")
    return _Parser(text).parse()


def field_names(expr) -> list[str]:
    """Every field a WHERE expression reads."""
    if expr is None:
        return []
    if isinstance(expr, Condition):
        return [expr.field]
    return [name for item in expr.items for name in field_names(item)]


# --- evaluation -----------------------------------------------------------------------------
def _comparable(value, literal):
    """Bring a record value and a literal to one comparable type (None stays None)."""
    if value is None or literal is None:
        return value, literal
    if isinstance(literal, bool) or isinstance(value, bool):
        return bool(value), bool(literal)
    if isinstance(literal, datetime):
        if isinstance(value, str):
            value = parse_datetime(value.replace(".000+0000", "+00:00"))
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value, literal
    if isinstance(literal, date):
        if isinstance(value, datetime):
            return value.date(), literal
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        return value, literal
    if isinstance(literal, Decimal):
        return Decimal(str(value)), literal
    if isinstance(literal, str):
        return str(value).lower(), literal.lower()
    return value, literal


def _like(value, pattern: str) -> bool:
    if value is None:
        return False
    regex = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def compare(value, op: str, literal) -> bool:
    if op == "LIKE":
        return _like(value, literal)
    if op in ("IN", "NOT IN"):
        hit = any(compare(value, "=", item) for item in literal)
        return hit if op == "IN" else not hit
    if isinstance(literal, DateRange):
        if value is None:
            return op == "!="
        day = value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])
        inside = literal.start <= day <= literal.end
        return {"=": inside, "!=": not inside, "<": day < literal.start, "<=": day <= literal.end, ">": day > literal.end, ">=": day >= literal.start}[op]
    a, b = _comparable(value, literal)
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if a is None or b is None:
        return False
    try:
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    except TypeError:
        return False


def matches(expr, get: Callable[[str], Any]) -> bool:
    if expr is None:
        return True
    if isinstance(expr, Condition):
        return compare(get(expr.field), expr.op, expr.value)
    if expr.op == "AND":
        return all(matches(item, get) for item in expr.items)
    if expr.op == "OR":
        return any(matches(item, get) for item in expr.items)
    return not matches(expr.items[0], get)


def sort_key(value):
    """Sortable form of a field value; callers handle None ordering."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float, Decimal)):
        return (1, Decimal(str(value)))
    return (2, str(value).lower())
