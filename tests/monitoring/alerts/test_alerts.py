"""Alerts: signed webhooks and email, de-duplicated and rate-limited, each linking to its screen."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from monitoring.alerts.services import alert_send, exception_spike_check
from monitoring.alerts.transports import SIGNATURE_HEADER, verify_signature
from monitoring.models import AlertChannel, SentAlert
from monitoring.tasks import sla_sweep
from sync.engine.exceptions import open_exception
from sync.models import FlowRun
from tests.factories import FlowRunFactory

pytestmark = pytest.mark.django_db


class Receiver:
    """A real HTTP endpoint standing in for Slack/Teams: records requests, answers `status`."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def webhook(receiver):
    return AlertChannel.objects.create(name="ops-slack", kind="webhook", target=receiver.url, secret="s3cret", max_per_hour=20)


def send(key="k1", **kw):
    return alert_send(event="sla_breach", dedupe_key=key, subject="2 order activations breached", body="ORD-1, ORD-2", path="/sla/?sla=breached", **kw)


def test_a_webhook_alert_is_signed_and_links_to_its_screen(webhook, receiver, settings):
    settings.PORTAL_BASE_URL = "https://q2c.example.com"
    [alert] = send()
    assert alert.status == SentAlert.Status.SENT
    [request] = receiver.requests
    assert verify_signature("s3cret", request["headers"][SIGNATURE_HEADER], request["body"])
    assert not verify_signature("wrong", request["headers"][SIGNATURE_HEADER], request["body"])
    body = json.loads(request["body"])
    assert body["url"] == "https://q2c.example.com/sla/?sla=breached" and body["url"] in body["text"]


def test_the_same_alert_is_sent_once_per_dedupe_period(webhook, receiver):
    assert send()[0].status == SentAlert.Status.SENT
    assert send()[0].status == SentAlert.Status.DUPLICATE
    assert len(receiver.requests) == 1
    later = timezone.now() + timedelta(seconds=webhook.dedupe_seconds + 1)
    assert send(now=later)[0].status == SentAlert.Status.SENT
    assert len(receiver.requests) == 2


def test_alerts_beyond_the_hourly_limit_are_recorded_but_not_sent(webhook, receiver):
    webhook.max_per_hour = 2
    webhook.save()
    statuses = [send(key=f"k{i}")[0].status for i in range(3)]
    assert statuses == ["sent", "sent", "rate_limited"]
    assert len(receiver.requests) == 2


def test_a_failed_delivery_is_recorded_and_retried_by_the_next_sweep(webhook, receiver):
    receiver.status = 500
    first = send()[0]
    assert first.status == SentAlert.Status.FAILED and "500" in SentAlert.objects.get(pk=first.pk).error
    receiver.status = 200
    assert send()[0].status == SentAlert.Status.SENT  # a failure does not count as "already sent"


def test_email_channels_get_the_alert_with_the_link():
    AlertChannel.objects.create(name="finance", kind="email", target="close@q2c.example, cfo@q2c.example", events=["sla_breach"])
    AlertChannel.objects.create(name="spikes-only", kind="email", target="ops@q2c.example", events=["exception_spike"])
    send()
    [message] = mail.outbox
    assert message.to == ["close@q2c.example", "cfo@q2c.example"]
    assert "/sla/?sla=breached" in message.body and message.subject.startswith("[Q2C] 2 order activations")


def test_the_sla_sweep_alerts_on_new_breaches_once(webhook, receiver):
    now = timezone.now()
    FlowRunFactory(
        status=FlowRun.Status.RUNNING, document_number="ORD-77", business_started_at=now - timedelta(minutes=40), sla_due_at=now - timedelta(minutes=25)
    )
    assert sla_sweep()["breached"] == 1
    assert sla_sweep()["breached"] == 0
    [request] = receiver.requests
    body = json.loads(request["body"])
    assert "ORD-77" in body["body"] and "sla=breached" in body["url"] and body["data"]["amount_at_risk"] == "12000.00"


def test_an_exception_spike_alerts_once_and_a_normal_rate_does_not(webhook, receiver):
    for i in range(4):
        open_exception(system="netsuite", error_class="timeout", message="Read timed out", fingerprint_extra=f"d{i}")
    assert exception_spike_check() == []
    for i in range(4, 8):
        open_exception(system="netsuite", error_class="timeout", message="Read timed out", fingerprint_extra=f"d{i}")
    [alert] = exception_spike_check()
    assert alert.status == "sent" and "8 opened in 15 min" in alert.subject and "netsuite timeout ×8" in alert.body
    assert exception_spike_check()[0].status == "duplicate"
