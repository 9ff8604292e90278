"""The sweeper after a broker outage (issue 19 item 5): accepted events whose message the broker lost
are on their way within seconds of its return, and a due item waiting in the broker is never sent twice.

Real Redis (the test database's, or one of the test's own that it restarts empty), real PostgreSQL,
a real worker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis as redis_lib
from django.test import override_settings
from django.utils import timezone

from q2c_portal.celery import app
from sync import dispatch
from sync.engine.inbox import accept_canonical
from sync.models import FlowRun, InboxEvent
from tests.conftest import WorkerProcess
from tests.factories import FlowRunFactory

from .test_broker_outage import OwnRedis

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def customer_event(i: int, prefix: str) -> dict:
    return {
        "id": f"{prefix}-{i}",
        "type": "customer.upserted.v1",
        "source": "crm-relay",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {"account": {"external_id": f"001{prefix}{i}", "name": f"{prefix} Customer {i}"}, "currency": "USD"},
    }


def flows_queue_length() -> int:
    client = redis_lib.Redis.from_url(app.conf.broker_url)
    return sum(client.llen(key) for key in client.scan_iter("flows*") if client.type(key) == b"list")


def test_the_sweeper_sends_one_message_per_due_item_however_often_it_runs():
    from sync.tasks import sweep

    # nobody consumes: the messages wait in the broker, as in a backlog
    dispatch._broker_down_until = 0.0
    [inbox_id] = [r["inbox_id"] for r in accept_canonical([customer_event(0, "BACKLOG")])]
    assert InboxEvent.objects.get(pk=inbox_id).status == "dispatched"
    run = FlowRunFactory(status="pending")
    assert dispatch.dispatch_flow(run.pk)
    long_ago = timezone.now() - timedelta(minutes=11)  # past every grace the sweeper allows
    InboxEvent.objects.filter(pk=inbox_id).update(received_at=long_ago, dispatched_at=long_ago)
    FlowRun.objects.filter(pk=run.pk).update(created_at=long_ago)
    before = flows_queue_length()
    for _ in range(4):  # a minute of beat
        sweep.run()
    assert flows_queue_length() == before, "the sweeper sent copies of messages still waiting in the broker"
    # once a worker has taken the flow's message (its marker cleared) and the flow is still due, one copy goes
    dispatch.clear_queued("flow", run.pk)
    sweep.run()
    sweep.run()
    assert flows_queue_length() == before + 1


@pytest.fixture
def restartable_broker(tmp_path):
    """A Redis of this test's own (no persistence: a restart loses every message), the app pointed at it."""
    server = OwnRedis(tmp_path)
    server.start()
    saved = (app.conf.broker_url, app.conf.result_backend)

    def point(url):
        app.conf.broker_url, app.conf.result_backend = url, url
        app._after_fork()  # drop pooled connections to the old broker
        app._backend_cache = None
        app._local.__dict__.pop("backend", None)

    point(server.url)
    with override_settings(REDIS_URL=server.url):
        yield server
    point(saved[0])
    app.conf.result_backend = saved[1]
    if server.proc.poll() is None:
        server.stop()


def test_events_whose_messages_a_restarted_broker_lost_are_processed_within_30_seconds(restartable_broker, django_db_blocker):
    from sync.tasks import sweep

    dispatch._broker_down_until = 0.0
    accepted = accept_canonical([customer_event(i, "LOST") for i in range(5)])
    ids = [r["inbox_id"] for r in accepted]
    assert set(InboxEvent.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"dispatched"}
    # the broker restarts empty before any worker took the messages
    restartable_broker.stop()
    restartable_broker.start()
    app._after_fork()
    dispatch._broker_down_until = 0.0
    back = time.monotonic()
    with django_db_blocker.unblock():
        worker = WorkerProcess(extra_env={"TEST_REDIS_URL": restartable_broker.url})
    try:
        statuses: set = set()
        while time.monotonic() - back < 30:
            sweep.run()  # what beat runs (every 5 s for the inbox, 15 s for the rest); in-process here
            statuses = set(InboxEvent.objects.filter(pk__in=ids).values_list("status", flat=True))
            if statuses <= {"processed", "ignored", "dead"}:
                break
            time.sleep(5)
        assert statuses == {"processed"}, (statuses, worker.output())
        assert time.monotonic() - back <= 30
    finally:
        worker.stop()


def test_a_message_held_by_a_worker_that_is_killed_is_sent_again_within_seconds_of_its_due_time(start_worker):
    """Issue 17 (the harness's worker-kill lost a deal): a flow's message with a countdown, held by
    the worker until due, dies with the worker; its queued marker kept the sweeper away for 10
    minutes. Received, the marker lasts only until due + RECEIVED_TTL_SECONDS."""
    from sync.tasks import sweep

    dispatch._broker_down_until = 0.0
    client = redis_lib.Redis.from_url(app.conf.broker_url)
    run = FlowRunFactory(status="pending")
    FlowRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))  # due for the sweeper
    key = f"q2c:queued:flow:{run.pk}"
    worker = start_worker(queues="flows,status")
    try:
        assert dispatch.dispatch_flow(run.pk, countdown=8)
        deadline = time.monotonic() + 6  # dispatched, the marker lasts QUEUED_TTL_SECONDS (600 s) + 8
        while client.ttl(key) > dispatch.RECEIVED_TTL_SECONDS + 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        ttl = client.ttl(key)
        assert 0 < ttl <= dispatch.RECEIVED_TTL_SECONDS + 8, f"the worker holds the message but its marker keeps the sweeper away for {ttl} s"
        worker.kill()  # before the countdown ran out: the message dies with the worker
        assert sweep.run()["flows"] == 0  # still marked: not sent twice
        deadline = time.monotonic() + ttl + 5
        while client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not client.exists(key)
        assert sweep.run()["flows"] == 1, "the flow whose message died with its worker was not sent again"
    finally:
        # the killed worker's message waits in kombu's unacked set for the visibility timeout; it must
        # not reach a later test's rows (ids restart with every test database)
        app.control.purge()
        client.delete("unacked", "unacked_index", "unacked_mutex")
