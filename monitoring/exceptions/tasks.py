"""Background work of the exception queue. Thin: take ids, call the service.

`monitoring.bulk_retry` is safe to deliver twice (acks_late redelivery, a user pressing
"resume"): each exception in the job is claimed with compare-and-set before its step is
retried, so every step is retried exactly once per job.
"""

from __future__ import annotations

from celery import shared_task

from q2c_portal.celery import TaskName

from .services import BULK_QUEUE, bulk_retry_run


@shared_task(name=TaskName.BULK_RETRY.value, queue=BULK_QUEUE, acks_late=True, reject_on_worker_lost=True)
def bulk_retry(job_id: int) -> dict:
    job = bulk_retry_run(job_id=job_id)
    if job is None:
        return {"job": job_id, "status": "missing"}
    return {"job": job.pk, "status": job.status, "retried": job.retried, "skipped": job.skipped, "failed": job.failed}
