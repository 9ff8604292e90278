"""Charge types of canonical lines, and the money figures that follow from them (docs/MONEY.md).

A line says how it bills: its charge type is `recurring` (with `interval` month|year and an
optional `interval_count`), `one_time` or `usage`. Lines of order.closed_won.v2 state it as
`charge_type`; v1 orders, amendment changes and the CRM readers' lines as `billing` (v1 orders
reach the flows upcast, sync/canonical/upcasters.py). Nothing here guesses: a line without a charge type,
or a recurring line without an interval, is a `ChargeError` naming the product, which the flows
turn into a mapping exception. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from sync.models import BillingInterval, ChargeType
from sync.models.canonical import annual_factor

CHARGE_TYPES = frozenset(ChargeType.values)
INTERVALS = frozenset(BillingInterval.values)
CENT = Decimal("0.01")


class ChargeError(ValueError):
    """A line whose charge type cannot be known. `field` names it (lines[2].billing)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Charge:
    charge_type: str
    interval: str = ""
    interval_count: int = 1

    @property
    def per_year(self) -> Decimal:
        return annual_factor(self.charge_type, self.interval, self.interval_count)


def product_label(line: Mapping) -> str:
    sku = line.get("sku") or "?"
    name = line.get("description") or ""
    return f"{sku} ({name})" if name and name != sku else str(sku)


def stated_charge_type(line: Mapping) -> tuple[object, str]:
    """(the charge type a line states, the key it states it under): `charge_type` when the line
    has that key (order.closed_won.v2), else `billing` (the v1 name)."""
    if "charge_type" in line:
        return line.get("charge_type"), "charge_type"
    return line.get("billing"), "billing"


def charge_of(line: Mapping, index: int = 0, prefix: str = "lines") -> Charge:
    """The charge of one canonical line, or ChargeError naming the product."""
    billing, key = stated_charge_type(line)
    where = f"{prefix}[{index}]"
    if billing in (None, ""):
        raise ChargeError(
            f"Product {product_label(line)} has no charge type: say whether it bills recurring (with an interval), one-time or by usage.", f"{where}.{key}"
        )
    if billing not in CHARGE_TYPES:
        raise ChargeError(f"Product {product_label(line)} has an unknown charge type {billing!r} (expected recurring, one_time or usage).", f"{where}.{key}")
    if billing != ChargeType.RECURRING:
        return Charge(billing)
    interval = line.get("interval")
    if interval not in INTERVALS:
        raise ChargeError(f"Recurring product {product_label(line)} has no billing interval (month or year): {interval!r}.", f"{where}.interval")
    try:
        count = int(line.get("interval_count") or 1)
    except (TypeError, ValueError):
        raise ChargeError(
            f"Recurring product {product_label(line)} has an invalid interval_count {line.get('interval_count')!r}.", f"{where}.interval_count"
        ) from None
    if count < 1:
        raise ChargeError(f"Recurring product {product_label(line)} has an invalid interval_count {count}.", f"{where}.interval_count")
    return Charge(ChargeType.RECURRING, interval, count)


def charges(lines: Iterable[Mapping], prefix: str = "lines") -> list[Charge]:
    return [charge_of(line, i, prefix) for i, line in enumerate(lines)]


def line_amount(line: Mapping) -> Decimal:
    return Decimal(str(line["unit_price"])) * Decimal(str(line["quantity"]))


def arr(lines: Iterable[Mapping]) -> Decimal:
    """Annual recurring revenue of the lines: recurring ones normalised to a year."""
    total = Decimal(0)
    for i, line in enumerate(lines):
        total += line_amount(line) * charge_of(line, i).per_year
    return total


def first_year_value(lines: Iterable[Mapping]) -> Decimal:
    """Recurring ARR + one-time fees (usage is billed when used: unknown in advance, not counted).
    A line whose charge type is unknown counts once at quantity × unit price — the least it is
    worth — so an order that cannot be mapped still shows money at risk."""
    total = Decimal(0)
    for i, line in enumerate(lines):
        try:
            charge = charge_of(line, i)
        except ChargeError:
            total += line_amount(line)
            continue
        if charge.charge_type == ChargeType.RECURRING:
            total += line_amount(line) * charge.per_year
        elif charge.charge_type == ChargeType.ONE_TIME:
            total += line_amount(line)
    return total


def split(lines: list[Mapping]) -> dict[str, list[Mapping]]:
    """Lines by charge type (raises ChargeError for the first unknown one)."""
    out: dict[str, list[Mapping]] = {t: [] for t in ChargeType.values}
    for i, line in enumerate(lines):
        out[charge_of(line, i).charge_type].append(line)
    return out
