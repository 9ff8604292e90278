"""Invoice sync lag: invoices *finalized in the window*: posted_at − finalized_at, and for the
unposted ones their age (as_of − finalized_at), both in the distribution."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from sync.models import FlowType

from .sources import started_source, values_sql
from .sql import ACTIVE, FLOW_TABLE, cents, fetch_all, fetch_one, local_day, reporting_amount_sql, round_seconds
from .window import Window


def lag_percentiles(window: Window) -> dict:
    src, src_params = started_source(window, [FlowType.INVOICE_POSTING])
    return fetch_one(
        f"""
        WITH src AS MATERIALIZED ({src})
        SELECT (SELECT coalesce(sum(completed), 0)::int FROM src) AS posted,
               (SELECT coalesce(sum(active_exc + active_clean), 0)::int FROM src) AS unposted,
               percentile_cont(0.5)  WITHIN GROUP (ORDER BY v) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY v) AS p95
        FROM src, unnest(src.durations || src.ages) v
        """,
        src_params,
    )


def invoice_sync_lag(window: Window) -> dict:
    """posted_at − finalized_at for invoices finalized in the window; unposted ones count with their age."""
    extra, params = window.flow_filter_sql()
    row = lag_percentiles(window)
    unposted = fetch_one(
        f"""
        SELECT max(extract(epoch FROM %s - f.business_started_at)) AS oldest,
               coalesce(sum({reporting_amount_sql()}), 0) AS amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status IN {ACTIVE} AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        """,
        [window.as_of, settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, window.start, window.end, *params],
    )
    return {
        "posted": row["posted"],
        "p50_seconds": round_seconds(row["p50"]),
        "p95_seconds": round_seconds(row["p95"]),
        "unposted": row["unposted"],
        "oldest_unposted_seconds": round_seconds(unposted["oldest"]),
        "unposted_amount": {"currency": settings.REPORTING_CURRENCY, "amount": cents(unposted["amount"])},
    }


UNPOSTED_AGE_BUCKETS = [(0, 3600, "< 1 h"), (3600, 14400, "1–4 h"), (14400, 86400, "4–24 h"), (86400, 259200, "1–3 days"), (259200, None, "> 3 days")]


def unposted_by_age(window: Window) -> list[dict]:
    """Invoices finalized in the window and not posted, by age bucket, with their value."""
    extra, params = window.flow_filter_sql()
    age = "extract(epoch FROM %s - f.business_started_at)"
    cases = " ".join(f"WHEN {age} < {high} THEN {i}" for i, (_, high, _) in enumerate(UNPOSTED_AGE_BUCKETS) if high)
    rows = fetch_all(
        f"""
        SELECT CASE {cases} ELSE {len(UNPOSTED_AGE_BUCKETS) - 1} END AS bucket, count(*) AS n,
               coalesce(sum({reporting_amount_sql()}), 0) AS amount
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = %s AND f.status IN {ACTIVE} AND f.business_completed_at IS NULL
          AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
        GROUP BY 1 ORDER BY 1
        """,
        [window.as_of] * sum(1 for b in UNPOSTED_AGE_BUCKETS if b[1])
        + [settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, window.start, window.end, *params],
    )
    found = {r["bucket"]: r for r in rows}
    return [
        {"label": label, "min_seconds": low, "max_seconds": high, "n": found.get(i, {}).get("n", 0), "amount": cents(found.get(i, {}).get("amount", 0))}
        for i, (low, high, label) in enumerate(UNPOSTED_AGE_BUCKETS)
    ]


def invoice_lag_by_entity(window: Window) -> list[dict]:
    """Per legal entity and currency: posted, lag p50/p95, unposted count and value."""
    extra, params = window.flow_filter_sql()
    src, src_params = started_source(window, [FlowType.INVOICE_POSTING])
    entity = "coalesce(nullif(legal_entity, ''), '—')"
    rows = fetch_all(
        f"""
        WITH src AS MATERIALIZED ({src}),
        counts AS (SELECT {entity} AS entity, currency, sum(completed)::int AS posted, sum(active_exc + active_clean)::int AS unposted
                   FROM src GROUP BY 1, 2),
        pct AS (SELECT {entity} AS entity, currency, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY v) AS p95
                FROM src, unnest(src.durations || src.ages) v GROUP BY 1, 2)
        SELECT c.entity, c.currency, c.posted, p.p50, p.p95, c.unposted
        FROM counts c LEFT JOIN pct p ON p.entity = c.entity AND p.currency = c.currency
        WHERE c.posted + c.unposted > 0
        ORDER BY 1, 2
        """,
        src_params,
    )
    amounts = {
        (r["entity"], r["currency"]): r
        for r in fetch_all(
            f"""
            SELECT coalesce(nullif(f.legal_entity, ''), '—') AS entity, f.currency, coalesce(sum(f.amount), 0) AS unposted_amount,
                   coalesce(sum({reporting_amount_sql()}), 0) AS unposted_reporting
            FROM {FLOW_TABLE} f
            WHERE f.flow_type = %s AND f.status IN {ACTIVE} AND f.business_started_at >= %s AND f.business_started_at < %s {extra}
            GROUP BY 1, 2
            """,
            [settings.REPORTING_CURRENCY, FlowType.INVOICE_POSTING, window.start, window.end, *params],
        )
    }
    zero = {"unposted_amount": Decimal(0), "unposted_reporting": Decimal(0)}
    for r in rows:
        money = amounts.get((r["entity"], r["currency"]), zero)
        r["unposted_amount"], r["unposted_reporting"] = money["unposted_amount"], money["unposted_reporting"]
    return rows


def daily_invoice_lag(window: Window) -> list[dict]:
    src, src_params = started_source(window, [FlowType.INVOICE_POSTING])
    return fetch_all(
        f"""
        WITH src AS MATERIALIZED ({src})
        SELECT {local_day("v.ts")} AS day, count(*) AS n, count(*) FILTER (WHERE v.unfinished) AS unposted,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY v.d) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY v.d) AS p95
        FROM ({values_sql(with_ages=True)}) v
        GROUP BY 1 ORDER BY 1
        """,
        [*src_params, window.tz],
    )
