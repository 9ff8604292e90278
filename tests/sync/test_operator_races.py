"""Operator actions and lost connections never run a flow twice or leave it half-done (issue 19).

Driven from outside on the real stack: PostgreSQL, Redis, a Celery worker, the sandboxes as servers,
the API through a live server. `check_double_runs` reads the step-attempt log: never two attempts
of one step at once.
"""

from __future__ import annotations

import io
import threading

import pytest
import requests
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from sync.engine.inbox import accept_canonical
from sync.models import AuditEntry, FlowRun, StepAttempt, SyncException

from .conftest import wait_for
from .test_flows_e2e import _finished, ns_sales_orders, order_event

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def double_runs() -> str:
    out = io.StringIO()
    call_command("check_double_runs", stdout=out)  # raises CommandError when there is one
    return out.getvalue()


def settled(run: FlowRun, step: str, *, attempts: int) -> FlowRun | None:
    """The run once it has stopped (completed, failed, cancelled) after `attempts` attempts of `step`."""
    run = FlowRun.objects.get(pk=run.pk)
    tried = StepAttempt.objects.filter(step__flow_run=run, step__name=step).exclude(outcome="running").count()
    return run if run.status in ("completed", "failed", "cancelled") and tried >= attempts else None


def _failed_order(stack, number: str) -> tuple[FlowRun, SyncException]:
    """An order whose sales order NetSuite refused (fail_records): failed, one open exception."""
    stack.sandboxes["netsuite"].faults(fail_records=[f"SO-{number}"])
    accept_canonical([order_event(number)])
    run = wait_for(lambda: _finished(number), message=f"{number} did not fail")
    assert run.status == "failed", list(run.steps.values("name", "status", "error_message"))
    return run, SyncException.objects.get(flow_run=run, status="open")


def test_ten_simultaneous_retries_of_one_exception_run_the_step_once(stack, reference_data, live_server, itops):
    stack.start_worker()
    run, exc = _failed_order(stack, "ORD-RACE-1")
    stack.sandboxes["netsuite"].faults()
    stack.sandboxes["netsuite"].faults(latency_ms=1500)  # healed, and slow: the retried step is running while the others arrive
    token = Token.objects.create(user=itops).key
    url = f"{live_server.url}/api/v1/exceptions/{exc.pk}/retry/"
    gate, answers = threading.Barrier(10), []

    def click():
        gate.wait()
        answers.append(requests.post(url, headers={"Authorization": f"Token {token}"}, timeout=60))

    clicks = [threading.Thread(target=click) for _ in range(10)]
    for t in clicks:
        t.start()
    for t in clicks:
        t.join()
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * 9, [(r.status_code, r.text[:200]) for r in answers]
    for refused in (r for r in answers if r.status_code == 409):
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert "already under way" in refused.json()["detail"]
    done = wait_for(lambda: settled(run, "erp_sales_order", attempts=2), timeout=90, message="the retried flow did not settle")
    assert done.status == "completed", list(done.steps.values("name", "status", "error_message"))
    assert AuditEntry.objects.filter(object_type="flow", object_id=str(run.pk), action="retry_requested").count() == 1
    assert AuditEntry.objects.filter(object_type="flow", object_id=str(run.pk), action="completed").count() == 1
    assert ns_sales_orders("SO-ORD-RACE-1") == 1
    # the failed first attempt and the one retry, one after the other
    assert list(StepAttempt.objects.filter(step__flow_run=run, step__name="erp_sales_order").values_list("outcome", flat=True)) == ["failed", "succeeded"]
    assert double_runs().strip().endswith("0 double runs")


def _terminate_backends_of(worker) -> int:
    """pg_terminate_backend every PostgreSQL session the worker's processes hold: the connection drops
    under them as a database failover or a network cut would drop it."""
    import psutil
    from django.db import connection

    processes = [psutil.Process(worker.proc.pid), *psutil.Process(worker.proc.pid).children(recursive=True)]
    pg_port = int(connection.settings_dict.get("PORT") or 5432)
    ports = [c.laddr.port for p in processes for c in p.net_connections(kind="tcp") if c.raddr and c.raddr.port == pg_port]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND client_port = ANY(%s)", [sorted(set(ports))]
        )
        return cursor.fetchone()[0]


def test_a_database_connection_dropped_inside_a_step_is_retried_never_a_mapping_failure(stack, reference_data):
    stack.sandboxes["netsuite"].faults(latency_ms=2500)
    worker = stack.start_worker()
    accept_canonical([order_event("ORD-DBDROP-1")])
    wait_for(
        lambda: StepAttempt.objects.filter(step__flow_run__document_number="ORD-DBDROP-1", step__name="erp_sales_order", outcome="running").exists(),
        message="ERP step never started",
    )
    # the step waits on NetSuite; its worker's database sessions are cut meanwhile
    assert _terminate_backends_of(worker) >= 1
    run = wait_for(lambda: _finished("ORD-DBDROP-1"), timeout=90, message="the flow did not settle after the connection drop")
    stack.sandboxes["netsuite"].faults()
    assert run.status == "completed", list(run.steps.values("name", "status", "error_class", "error_message"))
    assert not SyncException.objects.filter(flow_run=run).exists()
    outcomes = list(StepAttempt.objects.filter(step__flow_run=run, step__name="erp_sales_order").values_list("outcome", flat=True))
    assert outcomes[0] == "retry" and outcomes[-1] == "succeeded", outcomes
    assert ns_sales_orders("SO-ORD-DBDROP-1") == 1
    assert double_runs().strip().endswith("0 double runs")


def _so_lines_closed(external_id: str) -> bool:
    from sandboxes.netsuite.models import Record

    record = Record.objects.get(record_type="salesOrder", external_id=external_id)
    lines = (record.data.get("item") or {}).get("items") or []
    return bool(lines) and all(line.get("isClosed") for line in lines)


def test_a_cancel_during_a_running_retry_waits_for_the_step_and_then_compensates(stack, reference_data, client, itops):
    from .test_flows_e2e import stripe_subscriptions

    stack.start_worker()
    run, exc = _failed_order(stack, "ORD-CANCEL-1")
    stack.sandboxes["netsuite"].faults()
    stack.sandboxes["netsuite"].faults(latency_ms=2500)
    client.force_login(itops)
    assert client.post(f"/api/v1/exceptions/{exc.pk}/retry/").status_code == 200
    wait_for(
        lambda: StepAttempt.objects.filter(step__flow_run=run, step__name="erp_sales_order", number=2, outcome="running").exists(),
        message="the retried ERP step never started",
    )
    # the operator cancels while the retried step is writing the sales order
    cancel = client.post(f"/api/v1/exceptions/{exc.pk}/cancel/", {"reason": "customer withdrew", "confirm": True}, content_type="application/json")
    assert cancel.status_code == 200, cancel.content
    done = wait_for(lambda: settled(run, "erp_sales_order", attempts=2), timeout=90, message="the flow did not settle after the cancel")
    stack.sandboxes["netsuite"].faults()
    assert done.status == "cancelled", list(done.steps.values("name", "status", "error_message"))
    # the step that was running finished, and was then undone; nothing after it ran
    assert done.steps.get(name="erp_sales_order").status == "compensated"
    assert _so_lines_closed("SO-ORD-CANCEL-1")
    assert stripe_subscriptions("ORD-CANCEL-1") == 0
    assert done.steps.get(name="billing_subscription").status == "pending"
    flow_audit = list(AuditEntry.objects.filter(object_type="flow", object_id=str(run.pk)).values_list("action", flat=True))
    assert "cancel_requested" in flow_audit and flow_audit[-1] == "cancelled", flow_audit
    assert AuditEntry.objects.get(object_type="flow", object_id=str(run.pk), action="cancel_requested").actor == itops
    assert SyncException.objects.get(pk=exc.pk).status == "resolved"
    assert double_runs().strip().endswith("0 double runs")


def test_a_cancel_after_the_flow_completed_is_refused_not_dropped(stack, reference_data, client, itops):
    stack.start_worker()
    run, exc = _failed_order(stack, "ORD-CANCEL-2")
    stack.sandboxes["netsuite"].faults()
    client.force_login(itops)
    assert client.post(f"/api/v1/exceptions/{exc.pk}/retry/").status_code == 200
    wait_for(lambda: settled(run, "erp_sales_order", attempts=2), timeout=60)
    refused = client.post(f"/api/v1/exceptions/{exc.pk}/cancel/", {"reason": "too late", "confirm": True}, content_type="application/json")
    assert refused.status_code == 400 and "already completed" in refused.json()["detail"]
    assert FlowRun.objects.get(pk=run.pk).status == "completed"


def test_a_cancel_whose_message_was_lost_is_carried_out_by_the_sweeper(stack, reference_data, itops):
    from datetime import timedelta

    from django.utils import timezone

    from sync.engine.runner import flow_cancel_request
    from sync.tasks import sweep

    stack.start_worker()
    run, _ = _failed_order(stack, "ORD-CANCEL-3")
    flow_cancel_request(flow_run_id=run.pk, actor=itops, reason="broker was down")  # stored; no message sent
    FlowRun.objects.filter(pk=run.pk).update(cancel_requested_at=timezone.now() - timedelta(seconds=30))
    assert sweep.run(inbox_grace_seconds=0)["cancels"] == 1
    assert wait_for(lambda: FlowRun.objects.get(pk=run.pk).status == "cancelled", timeout=30, message="the sweeper did not carry out the cancel")


def test_a_garbage_answer_after_an_erp_write_is_read_back_by_external_id_not_a_mapping_failure(stack, reference_data):
    from sandboxes.netsuite.models import Record

    stack.start_worker()
    # NetSuite writes the order's customer, then answers — the write and its read-back — with garbage and no id
    stack.sandboxes["netsuite"].faults(garble_responses=2)
    accept_canonical([order_event("ORD-GARBLE-1")])
    run = wait_for(lambda: _finished("ORD-GARBLE-1"), timeout=90, message="the flow did not settle")
    assert stack.sandboxes["netsuite"].faults()["garble_responses"] == 0, "the fault never fired"
    assert run.status == "completed", list(run.steps.values("name", "status", "error_class", "error_message"))
    assert not SyncException.objects.filter(flow_run=run).exists()
    customer = Record.objects.get(record_type="customer", external_id=run.context["steps"]["erp_customer"]["external_id"])
    assert run.context["steps"]["erp_customer"]["erp_customer_id"] == str(customer.pk)
    assert list(StepAttempt.objects.filter(step__flow_run=run, step__name="erp_customer").values_list("outcome", flat=True)) == ["succeeded"]
    record = Record.objects.get(record_type="salesOrder", external_id="SO-ORD-GARBLE-1")
    assert run.context["steps"]["erp_sales_order"]["sales_order_id"] == str(record.pk)
    assert ns_sales_orders("SO-ORD-GARBLE-1") == 1


def test_a_garbage_answer_from_billing_is_retried_not_a_mapping_failure(stack, reference_data):
    from sandboxes.stripe.models import StripeObject

    stack.start_worker()
    # Stripe answers the order's first two calls (its customer lookup) with 200 and a body that is not Stripe's
    stack.sandboxes["stripe"].faults(garble_responses=2)
    accept_canonical([order_event("ORD-GARBLE-2")])
    run = wait_for(lambda: _finished("ORD-GARBLE-2"), timeout=90, message="the flow did not settle")
    assert stack.sandboxes["stripe"].faults()["garble_responses"] == 0, "the fault never fired"
    assert run.status == "completed", list(run.steps.values("name", "status", "error_class", "error_message"))
    assert not SyncException.objects.filter(flow_run=run).exists()
    outcomes = list(StepAttempt.objects.filter(step__flow_run=run, step__name="billing_customer").order_by("pk").values_list("outcome", flat=True))
    assert outcomes[-1] == "succeeded" and len(outcomes) >= 2, outcomes  # retried, then done
    customer_id = run.context["steps"]["validate"]["customer_id"]
    assert StripeObject.objects.filter(object="customer", hub_id=str(customer_id)).count() == 1
    assert StripeObject.objects.filter(object="subscription", data__metadata__order_number="ORD-GARBLE-2").count() == 1
