"""SLA: flows whose due time falls in the window and whose outcome is known (finished, or past
due): met = finished by the due time; breached = the rest; at risk = running now, past
`at_risk_pct` of their allowed time and not yet due."""

from __future__ import annotations

from datetime import datetime

from django.db.models.expressions import RawSQL

from monitoring.models import SlaPolicy
from sync.models import FlowType

from .sources import due_source
from .sql import FLOW_TABLE, fetch_all, local_day, rate
from .window import Window

# The one definition of "at risk" (this module's figures, the flow lists' sla=at_risk, the SLA
# sweep's alerts): running flows past their policy's at-risk share of the allowed time and not
# yet due. A FROM … WHERE clause over flows `f` and policies `p`; its parameters are now, now.
AT_RISK_FLOWS = f"""{FLOW_TABLE} f JOIN {SlaPolicy._meta.db_table} p ON p.flow_type = f.flow_type
    WHERE f.finished_at IS NULL AND f.status <> 'cancelled' AND f.sla_due_at > %s
      AND f.business_started_at + (f.sla_due_at - f.business_started_at) * (p.at_risk_pct / 100.0) <= %s"""


def at_risk_ids(now: datetime) -> RawSQL:
    """The ids of the flows at risk now, for `id__in` (the rows behind the at-risk figure)."""
    return RawSQL(f"SELECT f.id FROM {AT_RISK_FLOWS}", [now, now])


def due_and_met(window: Window, flow_types: list[str]) -> dict[str, dict]:
    """Per flow type: flows due in the window whose outcome is known, and those that met it."""
    if not flow_types:
        return {}
    src, src_params = due_source(window, flow_types)
    return {r["flow_type"]: r for r in fetch_all(f"SELECT flow_type, sum(due)::int AS due, sum(met)::int AS met FROM ({src}) src GROUP BY 1", src_params)}


def sla(window: Window, flow_types: list[str] | None = None) -> dict:
    """Per flow type (all with a policy, or these): due in the window (outcome known), met,
    breached; at risk now."""
    extra, params = window.flow_filter_sql()
    policies = SlaPolicy.objects.order_by("flow_type")
    if flow_types is not None:
        policies = policies.filter(flow_type__in=flow_types)
    policies = list(policies.values("flow_type", "target_seconds", "at_risk_pct", "objective_pct", "calendar", "month_end_target_seconds"))
    counts = due_and_met(window, [p["flow_type"] for p in policies])
    at_risk = dict(
        (r["flow_type"], r["n"])
        for r in fetch_all(
            f"""
            SELECT f.flow_type, count(*) AS n
            FROM {AT_RISK_FLOWS} {extra}
            GROUP BY 1
            """,
            [window.as_of, window.as_of, *params],
        )
    )
    out = {}
    for p in policies:
        c = counts.get(p["flow_type"], {"due": 0, "met": 0})
        due, met = c["due"], c["met"]
        out[p["flow_type"]] = {
            "label": FlowType(p["flow_type"]).label,
            "target_seconds": p["target_seconds"],
            "month_end_target_seconds": p["month_end_target_seconds"],
            "calendar": p["calendar"],
            "objective_pct": float(p["objective_pct"]),
            "due": due,
            "met": met,
            "breached": due - met,
            "at_risk": at_risk.get(p["flow_type"], 0),
            "compliance": rate(met, due),
            "below_objective": due > 0 and met / due * 100 < float(p["objective_pct"]),
        }
    return out


def sla_overall(sla_rows: dict) -> dict:
    due = sum(s["due"] for s in sla_rows.values())
    met = sum(s["met"] for s in sla_rows.values())
    return {
        "due": due,
        "met": met,
        "breached": sum(s["breached"] for s in sla_rows.values()),
        "at_risk": sum(s["at_risk"] for s in sla_rows.values()),
        "compliance": rate(met, due),
    }


def daily_sla(window: Window) -> list[dict]:
    """Per day of due time and flow type: due (outcome known) and met."""
    types = list(SlaPolicy.objects.values_list("flow_type", flat=True)) or [t for t, _ in FlowType.choices]
    src, src_params = due_source(window, types)
    return fetch_all(
        f"""
        SELECT {local_day("src.ts")} AS day, src.flow_type, sum(src.due)::int AS due, sum(src.met)::int AS met
        FROM ({src}) src
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        [window.tz, *src_params],
    )
