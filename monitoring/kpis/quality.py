"""How clean the syncing is: retries (attempts beyond the first) and duplicate customers."""

from __future__ import annotations

from sync.models import CustomerMatch, FlowType

from .sources import started_source
from .sql import EXC_TABLE, STEP_TABLE, fetch_all, fetch_one, rate
from .window import Window

MATCH_TABLE = CustomerMatch._meta.db_table


def retries(window: Window) -> dict:
    """Retries (attempts beyond the first) of steps started in the window, by system and class."""
    rows = fetch_all(
        f"""
        SELECT s.system, coalesce(nullif(s.error_class, ''), 'none') AS error_class, sum(s.attempts - 1) AS n
        FROM {STEP_TABLE} s
        WHERE s.attempts > 1 AND s.started_at >= %s AND s.started_at < %s
        GROUP BY 1, 2 ORDER BY 3 DESC
        """,
        [window.start, window.end],
    )
    by_system: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for r in rows:
        by_system[r["system"]] = by_system.get(r["system"], 0) + int(r["n"])
        by_class[r["error_class"]] = by_class.get(r["error_class"], 0) + int(r["n"])
    return {"total": sum(by_system.values()), "by_system": by_system, "by_error_class": by_class}


def duplicate_rate(window: Window) -> dict:
    """Customer conflicts detected ÷ customers synced, in the window (DESIGN.md).

    Conflicts: duplicate/conflict exceptions opened in the window by customer matching — on a
    customer sync flow, or the review of a customer match from any flow (order activation's
    "ensure customer"). Customers synced: customer sync flows started in the window, plus
    accounts new to the hub that other flows brought and the matcher decided on (new,
    linked automatically or sent for review; a customer sync's own matches are its flow)."""
    src, src_params = started_source(window, [FlowType.CUSTOMER_SYNC])
    row = fetch_one(
        f"""
        SELECT (SELECT count(*) FROM {EXC_TABLE} e WHERE e.error_class IN ('duplicate', 'conflict')
                  AND e.first_seen >= %s AND e.first_seen < %s
                  AND (e.flow_type = %s OR EXISTS (SELECT 1 FROM {MATCH_TABLE} m WHERE m.exception_id = e.id))) AS conflicts,
               (SELECT coalesce(sum(n), 0)::int FROM ({src}) src) AS synced_flows,
               (SELECT count(*) FROM {MATCH_TABLE} m WHERE m.created_at >= %s AND m.created_at < %s AND m.flow_type <> %s) AS matched_elsewhere
        """,
        [window.start, window.end, FlowType.CUSTOMER_SYNC, *src_params, window.start, window.end, FlowType.CUSTOMER_SYNC],
    )
    synced = int(row["synced_flows"]) + int(row["matched_elsewhere"])
    return {
        "conflicts": row["conflicts"],
        "customers_synced": synced,
        "rate": rate(row["conflicts"], synced),
    }
