"""Figures of any flow type: how long flows took (histograms of durations, or of ages while
unfinished), and which flows are still in flight and what each waits on."""

from __future__ import annotations

from .sources import completed_source, started_source, values_sql
from .sql import ACTIVE, FLOW_TABLE, STEP_TABLE, fetch_all
from .window import Window

CYCLE_BUCKETS = [300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400]  # seconds: 5m … 1d
LAG_BUCKETS = [300, 900, 1800, 3600, 7200, 14400, 86400, 259200]  # 5m … 3d


def bucket_labels(edges: list[int]) -> list[tuple[int | None, int | None]]:
    """[(lower, upper)] for width_bucket's 0..len(edges) results."""
    bounds = [0, *edges, None]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def duration_histogram(flow_type: str, window: Window, edges: list[int], *, include_unfinished: bool = False) -> list[dict]:
    """Counts per duration bucket; the invoice lag counts unposted invoices with their age."""
    if include_unfinished:  # invoices: finalized in the window, unposted at their age
        src, src_params = started_source(window, [flow_type])
    else:  # orders: completed in the window
        src, src_params = completed_source(window, [flow_type])
    edge_sql = "ARRAY[" + ",".join(str(float(e)) for e in edges) + "]::float8[]"
    rows = fetch_all(
        f"""
        WITH src AS MATERIALIZED ({src})
        SELECT width_bucket(v.d, {edge_sql}) AS bucket, count(*) AS n, count(*) FILTER (WHERE v.unfinished) AS unfinished
        FROM ({values_sql(with_ages=include_unfinished)}) v
        GROUP BY 1 ORDER BY 1
        """,
        src_params,
    )
    found = {r["bucket"]: r for r in rows}
    out = []
    for i, (low, high) in enumerate(bucket_labels(edges)):
        r = found.get(i, {"n": 0, "unfinished": 0})
        out.append({"bucket": i, "min_seconds": low, "max_seconds": high, "n": r["n"], "unfinished": r["unfinished"], "finished": r["n"] - r["unfinished"]})
    return out


def in_flight(flow_types: list[str], window: Window, limit: int = 15) -> list[dict]:
    """Oldest unfinished flows first, with the step they wait on."""
    extra, params = window.flow_filter_sql()
    return fetch_all(
        f"""
        SELECT f.id, f.flow_type, f.document_number, f.deal_id, f.account_name, f.legal_entity, f.amount, f.currency, f.status,
               f.current_step, f.parked_reason, f.waits_for, f.business_started_at, f.sla_due_at, f.sla_breached,
               extract(epoch FROM %s - f.business_started_at) AS age_seconds,
               (SELECT s.name || coalesce(' · ' || nullif(s.error_class, ''), '') FROM {STEP_TABLE} s
                 WHERE s.flow_run_id = f.id AND s.status NOT IN ('succeeded', 'skipped') ORDER BY s.seq LIMIT 1) AS waiting_step
        FROM {FLOW_TABLE} f
        WHERE f.flow_type = ANY(%s) AND f.status IN {ACTIVE} {extra}
        ORDER BY f.business_started_at, f.id LIMIT %s
        """,
        [window.as_of, list(flow_types), *params, limit],
    )
