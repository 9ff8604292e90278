"""Transitional adapter: `publish(task_object, …)` for callers not yet enqueuing by name
(sync/services.py: cancel flow, bulk retry). It imports no task module either; it only reads
the name off the task it is handed. New code calls sync.dispatch.publish(TaskName.X, …).
Delete this module once nothing imports it."""

from __future__ import annotations

from q2c_portal.celery import TaskName
from sync import dispatch


def publish(task, *, args: list, queue: str, countdown: float | None = None) -> bool:
    return dispatch.publish(TaskName(task.name), args=args, queue=queue, countdown=countdown)
