"""The inbox: every accepted event is a row in PostgreSQL before anyone answers 2xx.

Unique (source, source_event_id) makes acceptance idempotent: the same event id from the
same source is accepted once, ever. Rows are dispatched to Celery after commit; the
sweeper re-dispatches any whose message was lost.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from sync.audit import audit_record
from sync.canonical.contracts import upcast
from sync.canonical.events import event_types, validate_envelope, when
from sync.connectors.errors import ConnectorError
from sync.connectors.registry import get_connector
from sync.dispatch import dispatch_inbox, inbox_queue
from sync.flows.registry import flow_for_event
from sync.models import ErrorClass, InboxEvent

from .exceptions import open_exception
from .runner import flow_start

log = logging.getLogger(__name__)


def _insert(rows: list[dict]) -> dict[str, int]:
    """INSERT … ON CONFLICT DO NOTHING in one statement; returns {source_event_id: id} of the new rows."""
    if not rows:
        return {}
    now = timezone.now()
    values, params = [], []
    for row in rows:
        values.append("(%s, %s, %s, %s, %s, %s, %s::jsonb, 'received', 0, '')")
        params += [
            row["source"],
            row["source_event_id"],
            row["event_type"],
            row["occurred_at"],
            now,
            row["correlation_id"],
            json.dumps(row["envelope"], default=str),
        ]
    sql = (
        f"INSERT INTO {InboxEvent._meta.db_table} (source, source_event_id, event_type, occurred_at, received_at, correlation_id, envelope, status, attempts, error) "
        f"VALUES {', '.join(values)} ON CONFLICT (source, source_event_id) DO NOTHING RETURNING id, source_event_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {sid: pk for pk, sid in cursor.fetchall()}


def _row(*, source: str, source_event_id: str, event_type: str, occurred_at, envelope: dict, correlation_id=None) -> dict:
    return {
        "source": source[:64],
        "source_event_id": str(source_event_id)[:255],
        "event_type": event_type[:96],
        "occurred_at": when(occurred_at) or timezone.now(),
        "envelope": envelope,
        "correlation_id": str(correlation_id or uuid.uuid4()),
    }


def inbox_accept(rows: list[dict]) -> list[tuple[str, int | None]]:
    """Store rows (see `_row`); returns [(source_event_id, inbox id or None when a duplicate)]
    in input order. Dispatch happens after the transaction commits."""
    with transaction.atomic():
        created = _insert(rows)
        if created:
            queues = {pk: inbox_queue(r["event_type"]) for r in rows for sid, pk in [(r["source_event_id"], created.get(r["source_event_id"]))] if pk}
            ids = list(created.values())
            transaction.on_commit(lambda: dispatch_inbox(ids, queues))
    seen: set[str] = set()
    out = []
    for r in rows:
        sid = r["source_event_id"]
        pk = created.get(sid) if sid not in seen else None
        seen.add(sid)
        out.append((sid, pk))
    return out


# Caller correlation ids live in a namespace per source: uuid5(this, "<source>\n<caller's id>").
CALLER_CORRELATION_NAMESPACE = uuid.UUID("5b0e6f0c-3c1e-5d8e-9a52-7f3f2b1c9d40")


def caller_correlation_id(source: str, value) -> str | None:
    """The trace id the hub uses for a correlation id a caller sent. A caller may group its own
    events under one id (the same source and value give the same trace), but cannot attach an
    event to a trace it did not start: another flow's correlation id, sent as is, names a
    different trace here."""
    if value in (None, ""):
        return None
    return str(uuid.uuid5(CALLER_CORRELATION_NAMESPACE, f"{source}\n{str(value).lower()}"))


def accept_canonical(envelopes: list[dict]) -> list[dict]:
    """Validated canonical envelopes (from the events API) → inbox rows; a caller's correlation
    id is namespaced by its source (`caller_correlation_id`) before anything keeps it."""
    rows = []
    for e in envelopes:
        correlation_id = caller_correlation_id(e["source"], e.get("correlation_id"))
        envelope = {**e, "correlation_id": correlation_id} if correlation_id else e
        rows.append(
            _row(
                source=e["source"],
                source_event_id=e["id"],
                event_type=e["type"],
                occurred_at=e["occurred_at"],
                envelope=envelope,
                correlation_id=correlation_id,
            )
        )
    results = inbox_accept(rows)
    return [
        {"id": sid, "status": "accepted" if pk else "duplicate", "inbox_id": pk, "correlation_id": row["correlation_id"] if pk else None}
        for (sid, pk), row in zip(results, rows)
    ]


def _without_nul(value, path: str, found: list[str]):
    """`value` with every U+0000 removed from its strings and keys; the paths that held one go to `found`."""
    if isinstance(value, str):
        if "\x00" in value:
            found.append(path or "(event)")
            return value.replace("\x00", "")
        return value
    if isinstance(value, dict):
        return {_without_nul(k, f"{path}.{k}".lstrip("."), found): _without_nul(v, f"{path}.{k}".lstrip("."), found) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def accept_raw(system: str, raw_events: list[dict], *, body: bytes | None = None) -> list[tuple[str, int | None]]:
    """Verified vendor events (webhook or poll) → inbox rows, normalised later by a worker.

    A vendor event holding NUL characters (U+0000: PostgreSQL text cannot store one) is not lost:
    it is stored with them removed, the exact bytes received beside it (`raw_body_b64`; for a poll, the event
    as JSON), and
    dead-lettered at once with the reason and the fields; a replay processes the cleaned event."""
    rows, tainted = [], {}
    for raw in raw_events:
        found: list[str] = []
        clean = _without_nul(raw, "", found)
        if found:
            clean = {**clean, "nul_fields": found[:50], "raw_body_b64": base64.b64encode(body if body is not None else json.dumps(raw).encode()).decode()}
        row = _row(source=system, source_event_id=clean["id"], event_type=f"{system}.{clean['type']}", occurred_at=clean.get("occurred_at"), envelope=clean)
        rows.append(row)
        if found:
            tainted[row["source_event_id"]] = found
    if not tainted:
        return inbox_accept(rows)
    with transaction.atomic():  # stored and dead-lettered together: no worker ever sees a half-handled one
        results = inbox_accept([r for r in rows if r["source_event_id"] not in tainted])
        created = _insert([r for r in rows if r["source_event_id"] in tainted])
        for sid, pk in created.items():
            fields = tainted[sid]
            message = (
                f"The {system} event {sid} holds NUL characters (\\u0000) in {', '.join(fields[:5])}{' …' if len(fields) > 5 else ''}, "
                "which the database cannot store as text. The exact bytes received are kept (raw_body_b64); replay processes the event with the NULs removed."
            )
            _dead_letter(InboxEvent.objects.get(pk=pk), system=system, error_class=ErrorClass.VALIDATION, message=message, field=fields[0])
    by_sid = dict(results)
    seen: set[str] = set()
    out = []
    for row in rows:
        sid = row["source_event_id"]
        pk = (created.get(sid) if sid in tainted else by_sid.get(sid)) if sid not in seen else None
        seen.add(sid)
        out.append((sid, pk))
    return out


def _dead_letter(event: InboxEvent, *, system: str, error_class: str, message: str, field: str = "", response=None, document: dict | None = None) -> None:
    """Dead-letter the event with an exception; `document` (from the mapper) gives it business terms."""
    document = document or {}
    amount = document.get("amount")
    with transaction.atomic():
        InboxEvent.objects.filter(pk=event.pk).update(status=InboxEvent.Status.DEAD, error=message[:5000], processed_at=timezone.now())
        open_exception(
            system=system,
            error_class=error_class,
            message=message,
            field=field,
            payload=event.envelope,
            response=response or {},
            document_number=(document.get("document_number") or event.source_event_id)[:64],
            account_name=document.get("account_name") or "",
            amount=Decimal(str(amount)) if amount not in (None, "") else None,
            currency=document.get("currency") or "",
            inbox_event_id=event.pk,
            fingerprint_extra=f"inbox:{event.pk}",
        )
        audit_record(
            object_type="inbox",
            object_id=event.pk,
            action="dead_lettered",
            after={"status": InboxEvent.Status.DEAD},
            note=message[:500],
            correlation_id=event.correlation_id,
        )


def inbox_process(inbox_id: int) -> str:
    """Normalise (raw → canonical), validate, and start the flow(s). Transient connector errors
    propagate (the task retries); permanent ones dead-letter the event with an exception."""
    event = InboxEvent.objects.filter(pk=inbox_id).first()
    if event is None or event.status in (InboxEvent.Status.PROCESSED, InboxEvent.Status.IGNORED, InboxEvent.Status.DEAD):
        return event.status if event else "missing"
    InboxEvent.objects.filter(pk=inbox_id).update(attempts=event.attempts + 1)
    if event.event_type in event_types():
        envelopes = [event.envelope]
    else:
        try:
            envelopes = get_connector(event.source).normalize(event.envelope)
        except ConnectorError as exc:
            if exc.transient:
                raise
            _dead_letter(
                event,
                system=event.source,
                error_class=exc.error_class,
                message=exc.message,
                field=exc.field,
                response=exc.response if isinstance(exc.response, dict) else {},
                document=exc.document,
            )
            return InboxEvent.Status.DEAD
        except KeyError as exc:
            _dead_letter(event, system=event.source, error_class=ErrorClass.MAPPING, message=f"The {event.source} event lacks {exc} needed to map it.")
            return InboxEvent.Status.DEAD
    started = 0
    for envelope in envelopes:
        envelope.setdefault("correlation_id", str(event.correlation_id))
        problems = validate_envelope(envelope)
        if problems:
            first = problems[0]
            _dead_letter(
                event,
                system=event.source,
                error_class=ErrorClass.MAPPING,
                message=f"Mapped event is invalid: {first['field']}: {first['message']}",
                field=first["field"] or "",
                response={"errors": problems},
            )
            return InboxEvent.Status.DEAD
        envelope = upcast(envelope)  # validated as sent; the flows only ever see the current version
        flow = flow_for_event(envelope["type"])
        if flow is None:
            continue
        flow_start(flow=flow, envelope=envelope, inbox_event=event)
        started += 1
    status = InboxEvent.Status.PROCESSED if started else InboxEvent.Status.IGNORED
    InboxEvent.objects.filter(pk=inbox_id).update(status=status, processed_at=timezone.now())
    return status


def inbox_replay(*, inbox_id: int, actor=None) -> InboxEvent:
    """Send a dead-lettered (or ignored) event through processing again."""
    with transaction.atomic():
        event = InboxEvent.objects.select_for_update().get(pk=inbox_id)
        before = event.status
        InboxEvent.objects.filter(pk=inbox_id).update(status=InboxEvent.Status.RECEIVED, error="", processed_at=None)
        audit_record(
            object_type="inbox",
            object_id=inbox_id,
            action="replay",
            before={"status": before},
            after={"status": InboxEvent.Status.RECEIVED},
            user=actor,
            actor_label="operator",
            correlation_id=event.correlation_id,
        )
        transaction.on_commit(lambda: dispatch_inbox([inbox_id], {inbox_id: inbox_queue(event.event_type)}))
    event.refresh_from_db()
    return event
