"""Since when the hub holds data, and so which earlier windows a figure may be compared with.

DESIGN.md, "Period comparisons": compare with the previous window of equal length only where
the hub holds data for all of it. The hub's data starts with its earliest flow run (one step
down the business_started_at index); a previous window that starts before it would compare a
month of traffic with a few days of it ("+227 vs 1 opened").
"""

from __future__ import annotations

from datetime import datetime

from sync.models import FlowRun

from .window import Window


def data_since() -> datetime | None:
    """When the earliest flow the hub holds began (None: no flows yet)."""
    return FlowRun.objects.order_by("business_started_at").values_list("business_started_at", flat=True).first()


def comparable(previous: Window, since: datetime | None) -> bool:
    """The hub holds data for all of `previous`."""
    return since is not None and previous.start >= since
