"""The filtered queue as CSV: one row per exception, money with its currency, every cell safe to
open in a spreadsheet. Rows are written as they are read (streamed), at most EXPORT_MAX_ROWS."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from q2c_portal.redaction import redact_text
from sync.models import SyncException

EXPORT_MAX_ROWS = 50_000
HEADER = [
    "id",
    "status",
    "first_seen_utc",
    "last_seen_utc",
    "age_hours",
    "flow",
    "step",
    "system",
    "error_class",
    "account",
    "document",
    "amount",
    "currency",
    "revenue_at_risk",
    "reporting_currency",
    "assignee",
    "occurrences",
    "retries",
    "message",
    "url",
]


def money(value) -> str:
    if value is None:
        return ""
    cents = value.quantize(Decimal("0.01"))
    return str(cents) if cents == value else str(value.normalize())


def text(value: str) -> str:
    # no secret in an exported file; a cell starting with = + - @ would run as a formula in a spreadsheet
    value = redact_text(value or "")
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class _Echo:
    """csv.writer's file: hands each written line back instead of storing it."""

    def write(self, value):
        return value


def csv_lines(rows: QuerySet[SyncException], *, base_url: str, reporting_currency: str) -> Iterator[str]:
    """The header, then one line per exception (`rows` is read in chunks of 2,000)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    now = timezone.now()
    for exc in rows.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                exc.pk,
                exc.status,
                exc.first_seen.isoformat(),
                exc.last_seen.isoformat(),
                round((now - exc.first_seen).total_seconds() / 3600, 1),
                exc.flow_type,
                exc.step_name,
                exc.system,
                exc.error_class,
                text(exc.account_name),
                text(exc.document_number),
                money(exc.amount),
                exc.currency,
                money(exc.revenue_at_risk),
                reporting_currency,
                exc.assignee.username if exc.assignee_id else "",
                exc.occurrences,
                exc.retries,
                text(exc.message[:1000]),
                f"{base_url}{reverse('monitoring:exception_detail', args=[exc.pk])}",
            ]
        )
