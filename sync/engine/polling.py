"""Pull path: ask a system for changes since a stored watermark, so nothing depends on webhooks alone."""

from __future__ import annotations

import logging

from django.db import transaction

from sync.canonical.events import when
from sync.connectors.registry import get_connector
from sync.models import ConnectorState

from .inbox import accept_raw

log = logging.getLogger(__name__)


def poll(*, system: str, object_type: str, limit: int = 2000) -> int:
    """Store every change after the watermark as a raw inbox event; advance the watermark.
    Overlap with webhooks is harmless: the inbox dedupes on the event id."""
    state, _ = ConnectorState.objects.get_or_create(system=system)
    since = when((state.watermarks or {}).get(object_type))
    raw = list(get_connector(system).fetch_changes(object_type=object_type, since=since, limit=limit))
    if not raw:
        return 0
    results = accept_raw(system, raw)
    newest = max(r["occurred_at"] for r in raw if r.get("occurred_at"))
    with transaction.atomic():
        state = ConnectorState.objects.select_for_update().get(pk=state.pk)
        state.watermarks = {**(state.watermarks or {}), object_type: newest}
        state.save(update_fields=["watermarks"])
    accepted = sum(1 for _, pk in results if pk)
    log.info("polled %s %s: %s changes, %s new", system, object_type, len(raw), accepted)
    return accepted
