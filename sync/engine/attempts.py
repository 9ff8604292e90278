"""The step-attempt log read back: were two attempts of one step ever running at the same time?

Every attempt is a StepAttempt row from its start to its end (sync.engine.runner). Two attempts of
one step overlap when each started before the other ended; an attempt that never ended (its worker
was killed) counts as running until it was closed at its lease's end, or until now.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection

_OVERLAPS = """
    SELECT a.step_id, s.name, a.flow_run_id, a.id, a.number, a.worker, a.started_at, a.finished_at,
           b.id, b.number, b.worker, b.started_at, b.finished_at
      FROM sync_stepattempt a
      JOIN sync_stepattempt b ON b.step_id = a.step_id AND b.id > a.id
      JOIN sync_flowstep s ON s.id = a.step_id
     WHERE a.started_at < coalesce(b.finished_at, now())
       AND b.started_at < coalesce(a.finished_at, now())
       AND (%s::timestamptz IS NULL OR a.started_at >= %s::timestamptz)
     ORDER BY a.started_at
     LIMIT %s
"""


def double_runs(*, since: datetime | None = None, limit: int = 1000) -> list[dict]:
    """Pairs of attempts of one step that ran at once (at most `limit`), oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(_OVERLAPS, [since, since, limit])
        rows = cursor.fetchall()
    return [
        {
            "step_id": r[0],
            "step": r[1],
            "flow_run_id": r[2],
            "first": {"id": r[3], "number": r[4], "worker": r[5], "started_at": r[6], "finished_at": r[7]},
            "second": {"id": r[8], "number": r[9], "worker": r[10], "started_at": r[11], "finished_at": r[12]},
        }
        for r in rows
    ]
