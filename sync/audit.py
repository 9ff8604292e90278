"""Append-only audit trail. Every state change of a flow, step or exception writes one row."""

from __future__ import annotations

from typing import Any

from .models import AuditEntry


def audit_record(
    *,
    object_type: str,
    object_id: Any,
    action: str,
    before: dict | None = None,
    after: dict | None = None,
    user=None,
    actor_label: str = "engine",
    note: str = "",
    correlation_id=None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        object_type=object_type,
        object_id=str(object_id),
        action=action,
        before=before or {},
        after=after or {},
        actor=user if getattr(user, "is_authenticated", False) else None,
        actor_label=user.get_username() if getattr(user, "is_authenticated", False) else actor_label,
        note=note,
        correlation_id=correlation_id,
    )
