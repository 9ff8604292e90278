"""Enqueue by name: what `publish` hands to the broker, whichever task modules this process loaded."""

import pytest

from q2c_portal.celery import Queue, TaskName, app
from sync import dispatch


@pytest.fixture
def sent(monkeypatch):
    """Every message as kombu would publish it: (task name, headers, options)."""
    messages = []
    monkeypatch.setattr(app.amqp, "send_task_message", lambda producer, name, message, **options: messages.append((name, message[0], options)))
    monkeypatch.setattr(dispatch, "_broker_down_until", 0.0)
    return messages


def test_a_flow_goes_to_the_queue_it_names_with_its_countdown(sent):
    assert dispatch.dispatch_flow(41) and dispatch.dispatch_flow(42, queue=Queue.USAGE, countdown=12.5)
    (name1, headers1, options1), (name2, headers2, options2) = sent
    assert (name1, headers1["task"], headers1["argsrepr"], options1["queue"].name) == ("sync.run_flow", "sync.run_flow", "[41]", "flows")
    assert headers1["eta"] is None and headers1["expires"] is None
    assert (name2, headers2["argsrepr"], options2["queue"].name) == ("sync.run_flow", "[42]", "usage")
    assert headers2["eta"] is not None and headers2["expires"] is None


def test_an_outbox_publish_expires_as_it_always_did_even_with_the_task_module_loaded(sent):
    import sync.tasks  # noqa: F401 — registers the task here, whose own options must not leak in

    dispatch.dispatch_outbox()
    dispatch.publish(TaskName.PROCESS_INBOX_EVENT, args=[7], queue="usage")
    (name, headers, options), (inbox_name, inbox_headers, inbox_options) = sent
    assert (name, options["queue"].name, options["expiration"]) == ("sync.publish_outbox", "status", dispatch.PUBLISH_OUTBOX_EXPIRES)
    assert headers["expires"] is not None
    assert (inbox_name, inbox_options["queue"].name, inbox_headers["expires"]) == ("sync.process_inbox_event", "usage", None)


def test_an_unknown_task_name_or_queue_is_refused_before_anything_is_sent(sent):
    with pytest.raises(ValueError):
        dispatch.publish("sync.no_such_task", args=[], queue=Queue.FLOWS)
    with pytest.raises(ValueError):
        dispatch.publish(TaskName.RUN_FLOW, args=[1], queue="no-such-queue")
    assert sent == []


def test_while_the_broker_is_down_publish_fails_fast_and_then_stays_quiet(sent, monkeypatch):
    calls = []

    def down(*args, **kwargs):
        calls.append(1)
        raise ConnectionRefusedError("redis is down")

    monkeypatch.setattr(app, "send_task", down)
    assert dispatch.dispatch_flow(1) is False
    assert dispatch.dispatch_flow(2) is False  # within BROKER_BACKOFF_SECONDS: not even tried
    assert calls == [1]
