"""Upcasters: each turns the data of one contract version into the next version's (docs/CONTRACTS.md).

`UPCASTERS[(event type, from_version)]` takes the `data` of `<type>.v<from_version>` and returns
the data of `<type>.v<from_version + 1>`; sync/canonical/contracts.py chains them up to the
current version. Each is a pure function: deterministic (the same input gives the same output),
lossless (every fact of the old version is still there, under its new name), never guessing,
and never mutating its input.
"""

from __future__ import annotations

from collections.abc import Callable

from .charges import ChargeError, charge_of

Upcaster = Callable[[dict], dict]


def order_closed_won_v1_to_v2(data: dict) -> dict:
    """order.closed_won.v1 → v2.

    - each line's `billing` becomes its `charge_type`, decided by the hub's one reading of a
      line's charge (sync.canonical.charges.charge_of). A line whose charge cannot be known (no
      `billing`, or a recurring one without an interval) is left as v1 sent it: the flow refuses
      it as a mapping exception naming the product and the v1 field, exactly as before v2;
    - `opportunity_id` becomes `deal_id` (absent when v1 had none);
    - v1 has no tax lines: `tax_lines` stays absent.

    Keys v1 does not define but v2 does (`deal_id`, `tax_lines`, a line's `charge_type`) were
    never part of a v1 event: they are dropped, not read, so a v1 event never says in v2 what
    v1 could not say.
    """
    out = {key: value for key, value in data.items() if key not in ("opportunity_id", "deal_id", "tax_lines", "lines")}
    if "opportunity_id" in data:
        out["deal_id"] = data["opportunity_id"]
    if "lines" in data:
        lines = data["lines"]
        out["lines"] = [_order_line_v1_to_v2(line, i) for i, line in enumerate(lines)] if isinstance(lines, list) else lines
    return out


def _order_line_v1_to_v2(line, index: int):
    if not isinstance(line, dict):
        return line
    v1 = {key: value for key, value in line.items() if key != "charge_type"}
    try:
        charge = charge_of(v1, index)
    except ChargeError:
        return v1
    out = {key: value for key, value in v1.items() if key != "billing"}
    out["charge_type"] = charge.charge_type
    return out


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("order.closed_won", 1): order_closed_won_v1_to_v2,
}
