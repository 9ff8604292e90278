"""The contract registry: every published event contract version, its status, and the one place
where an older version becomes the current one (docs/CONTRACTS.md).

- `contract(name)`: a version's family, number, status (current | deprecated), sunset and the
  family's current version (statuses: sync/canonical/lifecycle.py);
- `upcast(envelope)`: the envelope as the current version of its event type, through the
  registered upcasters (sync/canonical/upcasters.py). The inbox upcasts before it routes an
  event and the runner before it stores a flow's event, so the flows only ever see the current
  version; a run stored before a new version existed is upcast when a step reads its data;
- `sunset_problems(envelope)`: after a deprecated version's sunset, ingest refuses it (the
  problem names the current version). Events accepted before the sunset are still processed
  and replayed: the gate is the API, not the inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache

from django.utils import timezone

from .events import event_types
from .lifecycle import CURRENT, DEPRECATED, family_version, lifecycle_of
from .upcasters import UPCASTERS

__all__ = ["CURRENT", "DEPRECATED", "Contract", "contract", "contracts", "sunset_problems", "today", "upcast", "upcast_data"]


@dataclass(frozen=True)
class Contract:
    name: str  # order.closed_won.v1
    family: str  # order.closed_won
    version: int  # 1
    status: str  # current | deprecated
    sunset: date | None  # deprecated: the first day (UTC) it is refused
    current: str  # the family's current version, e.g. order.closed_won.v2

    def accepted_on(self, day: date) -> bool:
        return self.sunset is None or day < self.sunset

    @property
    def accepted(self) -> bool:
        """Accepted at ingest today (UTC)."""
        return self.accepted_on(today())


@cache
def contracts() -> dict[str, Contract]:
    """Every event contract version with a schema file, by name, in name order."""
    names = event_types()
    highest: dict[str, int] = {}
    for name in names:
        family, version = family_version(name)
        highest[family] = max(version, highest.get(family, 0))
    out = {}
    for name in names:
        family, version = family_version(name)
        entry = lifecycle_of(name)
        out[name] = Contract(name, family, version, entry.status, entry.sunset, f"{family}.v{highest[family]}")
    return out


def contract(name: str) -> Contract | None:
    return contracts().get(name)


def today() -> date:
    return timezone.now().date()  # UTC: USE_TZ, and sunsets are UTC days


def upcast_data(event_type: str, data):
    """`data` of `event_type` as the data of its family's current version (the same object when
    it is the current version already, or not a known contract)."""
    found = contract(event_type)
    if found is None or found.name == found.current or not isinstance(data, dict):
        return data
    version = found.version
    while f"{found.family}.v{version}" != found.current:
        data = UPCASTERS[(found.family, version)](data)
        version += 1
    return data


def upcast(envelope: dict) -> dict:
    """The envelope as its event type's current version (a new dict; the same one when current)."""
    found = contract(envelope.get("type") or "")
    if found is None or found.name == found.current:
        return envelope
    return {**envelope, "type": found.current, "data": upcast_data(found.name, envelope.get("data"))}


def sunset_problems(envelope, day: date | None = None) -> list[dict]:
    """[{field, message, code: "sunset", current}] when the envelope's version is past its sunset; else []."""
    found = contract(envelope.get("type") or "") if isinstance(envelope, dict) else None
    day = day or today()
    if found is None or found.accepted_on(day):
        return []
    return [
        {
            "field": "type",
            "message": f"{found.name} was retired on {found.sunset.isoformat()} (its sunset); send {found.current} instead (GET /api/v1/schemas/{found.current}/).",
            "code": "sunset",
            "current": found.current,
        }
    ]
