"""A task goes through real Redis to a real worker process and comes back."""

import pytest

from q2c_portal.celery import Queue, app, ping


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_task_round_trips_through_redis_and_a_worker(celery_worker_process):
    result = ping.apply_async(args=["hello"], queue=Queue.STATUS.value)
    assert result.get(timeout=20) == "hello"


def test_every_queue_is_declared_and_tasks_default_to_flows():
    names = {q.name for q in app.conf.task_queues}
    assert names == {"flows", "usage", "status", "recon"}
    assert app.conf.task_default_queue == "flows"
    assert app.conf.task_acks_late is True and app.conf.task_reject_on_worker_lost is True


def test_every_task_is_named_by_the_task_name_enum_and_every_name_has_its_task():
    from q2c_portal.celery import TaskName

    app.loader.import_default_modules()  # what a worker does at start: autodiscover every tasks module
    registered = {name for name in app.tasks if not name.startswith("celery.")}
    assert registered == {t.value for t in TaskName}
