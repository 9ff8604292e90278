"""The window every KPI is computed for: [start, end), an optional legal entity and currency,
and one "now" (`as_of`) for the whole request."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property

from django.utils import timezone

from . import rollups


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    entity: str = ""
    currency: str = ""
    as_of: datetime = field(default_factory=lambda: timezone.now())

    @classmethod
    def last_days(cls, days: int = 30, **kwargs) -> Window:
        end = kwargs.pop("as_of", None) or timezone.now()
        return cls(start=end - timedelta(days=days), end=end, as_of=end, **kwargs)

    def previous(self) -> Window:
        span = self.end - self.start
        return replace(self, start=self.start - span, end=self.start)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

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
