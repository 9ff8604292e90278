"""The window every KPI is computed for: [start, end), an optional legal entity and currency,
and one "now" (`as_of`) for the whole request.

`window_from_params` is the one reading of a window from a query string, shared by every page
and the KPI API: dates are whole days in the viewer's time zone with an inclusive end ("Nov 1 –
Nov 30" ends at the first instant of Dec 1), From = To is that one day, and anything it cannot
read comes back as a readable message per parameter beside the default window (pages show the
message and the default figures; the API answers 400 problem+json with the same messages).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cached_property

from django.utils import timezone

from . import rollups

DEFAULT_DAYS = 30
MAX_DAYS = 3660  # ten years: longer windows are not a dashboard question
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)  # keeps previous() and date maths finite
ENTITY_MAX = 32
_DATE_SHAPE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    entity: str = ""
    currency: str = ""
    as_of: datetime = field(default_factory=lambda: timezone.now())

    @classmethod
    def last_days(cls, days: int = DEFAULT_DAYS, **kwargs) -> Window:
        end = kwargs.pop("as_of", None) or timezone.now()
        return cls(start=end - timedelta(days=days), end=end, as_of=end, **kwargs)

    def previous(self) -> Window:
        """The window of equal length just before this one: as many local days for a From–To
        window (a day across a clock change is still a day), the same span for a rolling one."""
        if self.whole_days:
            days = (self.last_day - self.first_day).days + 1
            return replace(self, start=_local_midnight(self.first_day - timedelta(days=days), timezone.get_current_timezone()), end=self.start)
        span = self.end.astimezone(UTC) - self.start.astimezone(UTC)
        return replace(self, start=self.start - span, end=self.start)

    @property
    def days(self) -> float:
        return (self.end.astimezone(UTC) - self.start.astimezone(UTC)).total_seconds() / 86400

    @property
    def first_day(self) -> date:
        """The window's first day in the viewer's zone (what "From" shows)."""
        return timezone.localtime(self.start).date()

    @property
    def last_day(self) -> date:
        """The window's last day in the viewer's zone, inclusive (what "To" shows): the end is
        exclusive, so a window ending at midnight ends with the day before."""
        return timezone.localtime(self.end - timedelta(microseconds=1)).date()

    @property
    def whole_days(self) -> bool:
        """Starts and ends at local midnight (a From–To window rather than a rolling one)."""
        start, end = timezone.localtime(self.start), timezone.localtime(self.end)
        return start.time() == time.min and end.time() == time.min

    @property
    def reaches_now(self) -> bool:
        """The window ends at (or after) its "now": figures at its end are figures now."""
        return self.end >= self.as_of

    def flow_filter_sql(self, alias: str = "f") -> tuple[str, list]:
        """Extra WHERE for the optional entity/currency filters."""
        sql, params = "", []
        if self.entity:
            sql += f" AND {alias}.legal_entity = %s"
            params.append(self.entity)
        if self.currency:
            sql += f" AND {alias}.currency = %s"
            params.append(self.currency)
        return sql, params

    @property
    def tz(self) -> str:
        return timezone.get_current_timezone_name()

    @cached_property
    def rollup_plan(self) -> rollups.RollupPlan:
        """Which hours of the window come from the hourly rollups and which from raw rows
        (read once per window, so every figure of a request uses the same split)."""
        return rollups.plan(self.start, self.end, self.tz)


# --- reading a window from a query string ------------------------------------------------------
@dataclass(frozen=True)
class WindowChoice:
    """What `window_from_params` read: the window to show, and a message per parameter it could
    not use (empty when everything was understood)."""

    window: Window
    errors: dict[str, str]
    explicit: bool  # the user chose From/To (not a rolling "last N days")


class _Unreadable(ValueError):
    pass


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), tz)


def _read_day(value: str) -> date | None:
    """A calendar date (YYYY-MM-DD), None when the value is not date-shaped; _Unreadable with
    the reason when it is shaped like one but no such day exists (2026-02-30)."""
    shape = _DATE_SHAPE.match(value)
    if not shape:
        try:
            return date.fromisoformat(value)  # other ISO 8601 spellings of a date (20261130)
        except ValueError:
            return None
    year, month, day = (int(part) for part in shape.groups())
    if not 1 <= month <= 12:
        raise _Unreadable(f"{value} is not a date: there is no month {month}.")
    days_in_month = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days_in_month:
        raise _Unreadable(f"{value} is not a date: {calendar.month_name[month]} {year} has {days_in_month} days.")
    return date(year, month, day)


def _read_bound(value: str, *, end: bool, tz: tzinfo) -> tuple[datetime, bool]:
    """(instant, given as a whole day). A day starts at local midnight; as an end it is inclusive,
    so it ends at the next local midnight. A datetime is the instant itself (an end is exclusive)."""
    day = _read_day(value)
    if day is None:
        try:
            instant = datetime.fromisoformat(value)
        except ValueError:
            raise _Unreadable(f"“{value[:40]}” is not a date; use YYYY-MM-DD, e.g. 2026-11-30.") from None
        if timezone.is_naive(instant):
            instant = timezone.make_aware(instant, tz)
        day = instant.date()
        whole = False
    else:
        instant, whole = None, True
    if not FIRST_DAY <= day <= LAST_DAY:
        raise _Unreadable(f"{value} is outside the dates the hub can show ({FIRST_DAY:%Y} to {LAST_DAY:%Y}).")
    if instant is None:
        instant = _local_midnight(day + timedelta(days=1) if end else day, tz)
    return instant, whole


def _nice(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def window_from_params(params: Mapping, *, default_days: int = DEFAULT_DAYS, as_of: datetime | None = None, tz: tzinfo | None = None) -> WindowChoice:
    """The window a query string asks for: `start`/`end` (dates, end inclusive, in the viewer's
    zone — or ISO datetimes, end exclusive), else `days` (the last N days up to now), else the last
    `default_days`; `entity` and `currency` narrow it. Only `start`: from then until now; only
    `end`: the `default_days` ending with it.

    Never raises for bad input: each parameter it cannot use is named in `errors` with a readable
    message and left out (a bad From/To falls back to the rolling window)."""
    as_of = as_of or timezone.now()
    tz = tz or timezone.get_current_timezone()
    errors: dict[str, str] = {}

    def text(name: str) -> str:
        value = params.get(name, "")
        return (value if isinstance(value, str) else str(value)).strip()

    entity = text("entity")
    if len(entity) > ENTITY_MAX:
        errors["entity"] = f"A legal entity code has at most {ENTITY_MAX} characters."
        entity = ""
    currency = text("currency")
    if currency and not _CURRENCY.match(currency):
        errors["currency"] = f"“{currency[:20]}” is not a currency; use a three-letter ISO 4217 code, e.g. EUR."
        currency = ""
    currency = currency.upper()

    days = default_days
    raw_days = text("days")
    if raw_days:
        try:
            days = int(raw_days)
            if not 1 <= days <= MAX_DAYS:
                raise ValueError
        except ValueError:
            errors["days"] = f"“{raw_days[:20]}” is not a number of days; use a whole number from 1 to {MAX_DAYS:,}."
            days = default_days

    bounds: dict[str, tuple[datetime, bool]] = {}
    for name in ("start", "end"):
        value = text(name)
        if value:
            try:
                bounds[name] = _read_bound(value, end=name == "end", tz=tz)
            except _Unreadable as unreadable:
                errors[name] = str(unreadable)

    rolling = Window.last_days(days, entity=entity, currency=currency, as_of=as_of)
    if not bounds or "start" in errors or "end" in errors:
        return WindowChoice(rolling, errors, explicit=False)
    start = bounds["start"][0] if "start" in bounds else None
    end = bounds["end"][0] if "end" in bounds else None
    if start is None:
        start = end - timedelta(days=default_days)
    if end is None:
        end = as_of if start < as_of else start + timedelta(days=1)
    if start >= end:
        if bounds.get("start", (None, False))[1] and bounds.get("end", (None, False))[1]:
            first, last = bounds["start"][0].date(), (bounds["end"][0] - timedelta(days=1)).date()
            errors["end"] = f"To ({_nice(last)}) is before From ({_nice(first)}); pick a To on or after the From date."
        else:
            errors["end"] = "The end must be after the start."
        return WindowChoice(rolling, errors, explicit=False)
    if end.astimezone(UTC) - start.astimezone(UTC) > timedelta(days=MAX_DAYS):
        errors["end"] = f"A window spans at most {MAX_DAYS:,} days; narrow From–To."
        return WindowChoice(rolling, errors, explicit=False)
    return WindowChoice(Window(start, end, entity, currency, as_of=as_of), errors, explicit=True)
