"""Value conversions the ERP mappers share (NetSuite, Business Central): canonical decimal strings
and dates to and from what an ERP's JSON carries. Pure functions; a value that cannot be
converted is a MappingError naming its field, which each connector turns into a mapping failure."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_PLACES = Decimal("0.0001")  # canonical money has at most 4 decimals


class MappingError(ValueError):
    """A canonical value cannot be expressed in the ERP (or back). `field` names it."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def to_decimal(value, field: str = "") -> Decimal:
    if isinstance(value, bool) or value is None:
        raise MappingError(f"{value!r} is not a decimal amount", field)
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MappingError(f"{value!r} is not a decimal amount", field) from exc
    if not result.is_finite():
        raise MappingError(f"{value!r} is not a decimal amount", field)
    return result


def money_str(value) -> str:
    """An ERP number → canonical decimal string: at least 2 decimals, at most 4."""
    amount = to_decimal(value)
    exponent = amount.as_tuple().exponent
    if exponent > -2:
        amount = amount.quantize(CENT)
    elif exponent < -4:
        amount = amount.quantize(MAX_PLACES, ROUND_HALF_UP)
    return format(amount, "f")


def quantity_str(value) -> str:
    amount = to_decimal(value)
    if amount == amount.to_integral_value():
        return str(amount.quantize(Decimal(1)))
    return format(amount.normalize(), "f")


def to_date(value, field: str = "") -> str:
    """A canonical date or date-time → an ERP date (YYYY-MM-DD, the UTC calendar day)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value or "")
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        return to_date(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError as exc:
        raise MappingError(f"{value!r} is not a date", field) from exc


def compact(body: dict) -> dict:
    """The body without its empty values (None, "")."""
    return {k: v for k, v in body.items() if v not in (None, "")}
