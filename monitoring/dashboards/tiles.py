"""The Overview's KPI tiles: each figure with its change against the previous period, whether
that change is good, and a link to the rows behind it."""

from __future__ import annotations

from django.urls import reverse

from monitoring.formatting import day_label, moment, pct
from monitoring.formatting import duration as human_duration


def with_query(url: str, qs: str) -> str:
    if not qs:
        return url
    return f"{url}{'&' if '?' in url else '?'}{qs}"


def overview_tiles(current: dict, previous: dict | None, *, qs: str = "", window=None, previous_window=None, data_since=None) -> list[dict]:
    """KPI tiles with the change against the previous period (tone says whether the change is good).

    `previous` is None when the hub holds no data for all of the previous window: each tile
    then says "no comparison (data since <date>)" instead of comparing with a partial period.
    `qs` (the window's query string) is added to each tile's link, so the rows behind a tile
    are those of the same window."""
    tiles = _tiles(current, previous, reverse, window=window, previous_window=previous_window)
    for tile in tiles:
        if tile["key"] not in ("exceptions", "revenue"):  # current-state lists: no window
            tile["href"] = with_query(tile["href"], qs)
        if previous is None:
            tile["delta"], tile["was"] = None, None
            tile["no_comparison"] = f"no comparison (data since {day_label(data_since)})" if data_since else "no comparison (no data yet)"
    return tiles


EMPTY_PREVIOUS = {
    "order_cycle_time": {"p50_seconds": None},
    "invoice_sync_lag": {"p95_seconds": None},
    "sla_overall": {"compliance": None},
    "amendments": {"failure_rate": None},
    "exceptions": {"open_at_end": None},
    "renewal_accuracy": {"accuracy": None},
}


def _tiles(current: dict, previous: dict | None, reverse, *, window=None, previous_window=None) -> list[dict]:
    def delta(now, before, *, lower_is_better: bool, kind: str) -> dict | None:
        if now is None or before is None:
            return None
        now, before = float(now), float(before)
        if kind == "pct":  # rates: difference in percentage points
            diff = (now - before) * 100
            text = f"{diff:+.1f} pp"
        elif kind == "count" and before < 20:  # small bases: a percentage would shout
            diff = now - before
            text = f"{diff:+,.0f}"
        else:
            if before == 0:
                return None
            diff = (now - before) / before * 100
            text = f"{diff:+.0f}%"
        if abs(diff) < 0.05:
            return {"text": "no change", "arrow": "→", "tone": "flat"}
        better = (diff < 0) if lower_is_better else (diff > 0)
        return {"text": text, "arrow": "▲" if diff > 0 else "▼", "tone": "good" if better else "bad"}

    c, p = current, previous or EMPTY_PREVIOUS
    oct_, poct = c["order_cycle_time"], p["order_cycle_time"]
    lag, plag = c["invoice_sync_lag"], p["invoice_sync_lag"]
    so, pso = c["sla_overall"], p["sla_overall"]
    am, pam = c["amendments"], p["amendments"]
    ex, pex = c["exceptions"], p["exceptions"]
    ren, pren = c["renewal_accuracy"], p["renewal_accuracy"]
    target = (c["sla"].get("order_activation") or {}).get("target_seconds")

    return [
        {
            "key": "cycle",
            "label": "Order cycle time p50",
            "value": human_duration(oct_["p50_seconds"]),
            "href": reverse("monitoring:orders") + "?basis=completed",
            "sub": f"p90 {human_duration(oct_['p90_seconds'])} · {oct_['count']:,} activated · {oct_['in_flight']:,} in flight",
            "delta": delta(oct_["p50_seconds"], poct["p50_seconds"], lower_is_better=True, kind="num"),
            "was": human_duration(poct["p50_seconds"]),
            "tone": "bad" if target and oct_["p50_seconds"] and oct_["p50_seconds"] > target else "",
        },
        {
            "key": "lag",
            "label": "Invoice sync lag p95",
            "value": human_duration(lag["p95_seconds"]),
            "href": reverse("monitoring:invoices") + "?basis=started&flow=invoice_posting",
            "sub": f"p50 {human_duration(lag['p50_seconds'])} · {lag['posted']:,} posted · {lag['unposted']:,} unposted",
            "delta": delta(lag["p95_seconds"], plag["p95_seconds"], lower_is_better=True, kind="num"),
            "was": human_duration(plag["p95_seconds"]),
            "tone": "warn" if lag["unposted"] else "",
        },
        {
            "key": "sla",
            "label": "SLA compliance",
            "value": pct(so["compliance"]),
            "href": reverse("monitoring:sla"),
            "sub": f"{so['met']:,} of {so['due']:,} met · {so['breached']:,} breached · {so['at_risk']:,} at risk",
            "delta": delta(so["compliance"], pso["compliance"], lower_is_better=False, kind="pct"),
            "was": pct(pso["compliance"]),
            "tone": "bad" if so["breached"] else ("ok" if so["due"] else ""),
        },
        {
            "key": "exceptions",
            "label": "Open exceptions",
            "value": f"{ex['open_at_end']:,}",
            "href": reverse("monitoring:exceptions"),
            "sub": (
                ("" if window is None or window.reaches_now else f"open at {moment(window.end)} · ")
                + f"{ex['opened']:,} opened · {ex['resolved']:,} resolved · MTTR {human_duration(ex['mttr_seconds'])}"
            ),
            # like with like: open at this window's end against open at the previous window's end
            "delta": delta(ex["open_at_end"], pex["open_at_end"], lower_is_better=True, kind="count"),
            "was": None
            if pex["open_at_end"] is None
            else f"{pex['open_at_end']:,} open at {moment(previous_window.end) if previous_window else 'the previous end'}",
            "tone": "bad" if ex["open_at_end"] else "ok",
        },
        {
            "key": "amendments",
            "label": "Amendment failure rate",
            "value": pct(am["failure_rate"]),
            "href": reverse("monitoring:amendments") + "?basis=started&flow=amendment&exc=1",
            "sub": f"{am['with_exception']:,} of {am['started']:,} · first pass {pct(am['first_pass_success_rate'])} · {am['completed']:,} completed",
            "delta": delta(am["failure_rate"], pam["failure_rate"], lower_is_better=True, kind="pct"),
            "was": pct(pam["failure_rate"]),
            "tone": "warn" if am["with_exception"] else "",
        },
        {
            "key": "renewals",
            "label": "Renewal accuracy",
            "value": pct(ren["accuracy"]),
            "href": reverse("monitoring:amendments") + "?basis=started&flow=renewal",
            "sub": f"{ren['completed_without_exception']:,} of {ren['due']:,} renewals clean",
            "delta": delta(ren["accuracy"], pren["accuracy"], lower_is_better=False, kind="pct"),
            "was": pct(pren["accuracy"]),
            "tone": "",
        },
    ]
