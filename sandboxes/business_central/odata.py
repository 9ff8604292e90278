"""The OData v4 query options the sandbox understands: $filter, $select, $expand, $orderby, $top,
$skip and server-driven paging ($skiptoken in @odata.nextLink, `Prefer: odata.maxpagesize`).

$filter covers comparisons (eq ne gt ge lt le) joined by and / or / not and parentheses, on
literals: 'text' (quotes doubled inside), numbers, true / false / null, GUIDs, dates and
date-times written bare (2026-03-02, 2026-03-02T10:00:00Z). Text compares without regard to
case, as BC's SQL collation does. API v2.0 has no `in` operator; neither has this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

COMPARATORS = {"eq", "ne", "gt", "ge", "lt", "le"}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
      | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
      | (?P<date>\d{4}-\d{2}-\d{2})
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<paren>[()])
    )""",
    re.VERBOSE,
)


class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Logical:
    op: str  # and | or
    left: Any
    right: Any


@dataclass(frozen=True)
class Not:
    operand: Any


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise QueryError(f"Syntax error at position {position} in '{text}'.")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError(f"Expression expected at the end of '{self.text}'.")
        self.at += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token and token[0] == "name" and token[1].lower() in words:
            self.at += 1
            return token[1].lower()
        return None

    def parse(self):
        expression = self.or_()
        if self.peek() is not None:
            raise QueryError(f"Syntax error: '{self.peek()[1]}' is not expected in '{self.text}'.")
        return expression

    def or_(self):
        left = self.and_()
        while self.keyword("or"):
            left = Logical("or", left, self.and_())
        return left

    def and_(self):
        left = self.unary()
        while self.keyword("and"):
            left = Logical("and", left, self.unary())
        return left

    def unary(self):
        if self.keyword("not"):
            return Not(self.unary())
        token = self.peek()
        if token == ("paren", "("):
            self.take()
            inner = self.or_()
            if self.take() != ("paren", ")"):
                raise QueryError(f"')' expected in '{self.text}'.")
            return inner
        left = self.operand()
        op = self.keyword(*COMPARATORS)
        if op is None:
            raise QueryError(f"A comparison operator is expected after '{getattr(left, 'name', left)}' in '{self.text}'.")
        return Compare(op, left, self.operand())

    def operand(self):
        kind, text = self.take()
        if kind == "string":
            return Literal(text[1:-1].replace("''", "'"))
        if kind == "number":
            return Literal(Decimal(text))
        if kind == "guid":
            return Literal(text.lower())
        if kind == "datetime":
            return Literal(_datetime(text))
        if kind == "date":
            return Literal(date.fromisoformat(text))
        if kind == "name":
            lowered = text.lower()
            if lowered in ("true", "false"):
                return Literal(lowered == "true")
            if lowered == "null":
                return Literal(None)
            return Field(text)
        raise QueryError(f"An operand is expected, not '{text}', in '{self.text}'.")


def _datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_filter(text: str):
    return _Parser(text).parse()


def fields_of(expression) -> set[str]:
    if isinstance(expression, Field):
        return {expression.name}
    if isinstance(expression, Compare | Logical):
        return fields_of(expression.left) | fields_of(expression.right)
    if isinstance(expression, Not):
        return fields_of(expression.operand)
    return set()


def equalities(expression) -> dict[str, Any]:
    """field → value of the `field eq literal` terms joined by `and` at the top (for a database pushdown)."""
    if isinstance(expression, Logical) and expression.op == "and":
        return {**equalities(expression.left), **equalities(expression.right)}
    if isinstance(expression, Compare) and expression.op == "eq" and isinstance(expression.left, Field) and isinstance(expression.right, Literal):
        return {expression.left.name: expression.right.value}
    return {}


def _comparable(value: Any, like: Any) -> Any:
    """`value` (as stored) in the type of the literal it is compared with."""
    if value is None or like is None:
        return value
    if isinstance(like, bool):
        return bool(value)
    if isinstance(like, Decimal):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    if isinstance(like, datetime):
        return _datetime(str(value)) if isinstance(value, str) else value
    if isinstance(like, date):
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError:
            return value
    return str(value).casefold()


def evaluate(expression, row: dict) -> bool:
    if isinstance(expression, Logical):
        if expression.op == "and":
            return evaluate(expression.left, row) and evaluate(expression.right, row)
        return evaluate(expression.left, row) or evaluate(expression.right, row)
    if isinstance(expression, Not):
        return not evaluate(expression.operand, row)
    left, right = (_value(side, row) for side in (expression.left, expression.right))
    if isinstance(expression.left, Field) and isinstance(expression.right, Literal):
        left = _comparable(left, right)
    elif isinstance(expression.right, Field) and isinstance(expression.left, Literal):
        right = _comparable(right, left)
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.casefold(), right.casefold()
    if expression.op == "eq":
        return left == right
    if expression.op == "ne":
        return left != right
    if left is None or right is None:
        return False
    try:
        return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[expression.op]
    except TypeError:
        return False


def _value(side, row: dict) -> Any:
    return row.get(side.name) if isinstance(side, Field) else side.value


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """`a desc, b` → [("a", True), ("b", False)] (True: descending)."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        words = part.split()
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise QueryError(f"Invalid $orderby '{text}'.")
        out.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return out


def sort_key(value: Any):
    """Sort None first, then by a type-stable key."""
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | Decimal | float):
        return (2, Decimal(str(value)))
    return (3, str(value).casefold())


def max_page_size(prefer: str) -> int | None:
    """`Prefer: odata.maxpagesize=N` → N."""
    for part in (prefer or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                return max(1, int(value.strip()))
            except ValueError:
                return None
    return None
