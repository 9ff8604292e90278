"""The status of every published event contract version (docs/CONTRACTS.md).

A version not listed here is `current`. Each event type has exactly one current version, its
highest; every older version is listed as `deprecated` with its `sunset`: the first day (00:00
UTC) on which POST /api/v1/events/ refuses it. Until then it is accepted and upcast to the
current version (sync/canonical/upcasters.py), so the flows only ever see the current one.

Plain data, no Django: bin/check_contracts.py reads it without setting Django up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

CURRENT = "current"
DEPRECATED = "deprecated"


@dataclass(frozen=True)
class Lifecycle:
    status: str
    sunset: date | None = None
    note: str = ""


STATUS: dict[str, Lifecycle] = {
    "order.closed_won.v1": Lifecycle(
        DEPRECATED,
        sunset=date(2027, 7, 1),
        note="v2 names each line's charge_type (v1: billing) and the CRM deal as deal_id (v1: opportunity_id), and may carry tax_lines.",
    ),
}


def lifecycle_of(name: str) -> Lifecycle:
    return STATUS.get(name, Lifecycle(CURRENT))


def family_version(name: str) -> tuple[str, int]:
    """("order.closed_won", 2) for "order.closed_won.v2"."""
    family, _, version = name.rpartition(".v")
    if not family or not version.isdigit():
        raise ValueError(f"{name!r} is not <event type>.v<version>")
    return family, int(version)


def lifecycle_problems(names, status: dict[str, Lifecycle] | None = None) -> list[str]:
    """What is wrong with the statuses of these contract versions (schema file names): [] when
    every event type has one current version, its highest, and every older one is deprecated
    with a sunset."""
    status = STATUS if status is None else status
    names = set(names)
    problems = [f"{name}: listed in sync/canonical/lifecycle.py but there is no such schema file" for name in sorted(set(status) - names)]
    families: dict[str, list[int]] = {}
    for name in sorted(names):
        family, version = family_version(name)
        families.setdefault(family, []).append(version)
        entry = status.get(name, Lifecycle(CURRENT))
        if entry.status not in (CURRENT, DEPRECATED):
            problems.append(f"{name}: unknown status {entry.status!r} (current or deprecated)")
        elif entry.status == DEPRECATED and not isinstance(entry.sunset, date):
            problems.append(f"{name}: deprecated without a sunset date")
        elif entry.status == CURRENT and entry.sunset is not None:
            problems.append(f"{name}: a current version has no sunset")
    for family, versions in sorted(families.items()):
        highest = f"{family}.v{max(versions)}"
        current = [f"{family}.v{v}" for v in sorted(versions) if status.get(f"{family}.v{v}", Lifecycle(CURRENT)).status == CURRENT]
        if current != [highest]:
            problems.append(
                f"{family}: the current version must be the highest one ({highest}) and the only one; current now: {', '.join(current) or 'none'}"
                " — list the older ones as deprecated with a sunset"
            )
    return problems
