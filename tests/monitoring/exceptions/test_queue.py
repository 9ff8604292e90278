"""The exception queue pages: filters, search, sort, pages, grouping, actions, permissions,
payload edits with a second approver, saved views, CSV export, root causes and bulk retry."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from sync.models import AuditEntry, ExceptionComment, FlowRun, FlowStep, InboxEvent, SyncException
from tests.factories import FlowRunFactory, FlowStepFactory, InboxEventFactory, SyncExceptionFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def exc(**kw):
    """An open exception on its own failed flow; keyword arguments set its fields."""
    flow = {k[len("flow__") :]: kw.pop(k) for k in list(kw) if k.startswith("flow__")}
    step = {k[len("step__") :]: kw.pop(k) for k in list(kw) if k.startswith("step__")}
    run = FlowRunFactory(status="failed", **flow)
    return SyncExceptionFactory(step=FlowStepFactory(flow_run=run, **step), **kw)


def listed(client, query: str = "", **extra) -> str:
    response = client.get(f"/exceptions/{query}", **extra)
    assert response.status_code == 200
    return response.content.decode()


def rows(html: str) -> list[int]:
    """Exception ids in the order the table shows them."""
    import re

    return [int(pk) for pk in re.findall(r'<tbody id="exc-(\d+)"', html)]


# --- filters -------------------------------------------------------------------------------
@pytest.fixture
def two(db, itops):
    """For each filter, one exception that matches it (`hit`) and one that does not (`miss`)."""
    old = timezone.now() - timedelta(days=3)
    hit = exc(
        error_class="mapping",
        system="stripe",
        step__name="billing_subscription",
        step__system="stripe",
        cause_key="cause-a",
        account_name="Initech GmbH",
        document_number="INV-7001",
        currency="EUR",
        amount=Decimal("50000"),
        revenue_at_risk=Decimal("54000"),
        retries=3,
        first_seen=old,
        last_seen=old,
        assignee=itops,
        message="No price mapped for plan gold-eur",
        flow__flow_type="invoice_posting",
    )
    miss = exc(
        error_class="validation",
        system="netsuite",
        cause_key="cause-b",
        account_name="Globex Corporation",
        document_number="ORD-1",
        currency="USD",
        amount=Decimal("100"),
        revenue_at_risk=Decimal("100"),
        retries=0,
        message="Please enter value(s) for: Subsidiary",
    )
    return hit, miss


FILTERS = [
    "error_class=mapping",
    "system=stripe",
    "flow_type=invoice_posting",
    "step=billing_subscription",
    "cause=cause-a",
    "account=initech",
    "document=INV-7001",
    "currency=eur",
    "amount_min=1000",
    "amount_max=60000&amount_min=40000",
    "risk_min=50000",
    "retries=3",
    "retries=1",
    "age=7d",
    "assignee=oscar",
    "assignee=me",
    "q=gold-eur",
    "q=INV-70",
    "q=Initech",
]


@pytest.mark.parametrize("query", FILTERS)
def test_each_filter_keeps_the_matching_row_and_drops_the_other(client, itops, two, query):
    hit, miss = two
    client.force_login(itops)
    shown = rows(listed(client, f"?{query}"))
    assert hit.pk in shown and miss.pk not in shown, query


def test_unassigned_and_never_retried_filters(client, itops, two):
    hit, miss = two
    client.force_login(itops)
    assert rows(listed(client, "?assignee=none")) == [miss.pk]
    assert rows(listed(client, "?retries=0")) == [miss.pk]


def test_filters_combine_as_and(client, itops, two):
    hit, miss = two
    also_stripe = exc(error_class="validation", system="stripe", document_number="INV-9")
    client.force_login(itops)
    assert set(rows(listed(client, "?system=stripe"))) == {hit.pk, also_stripe.pk}
    assert rows(listed(client, "?system=stripe&error_class=validation")) == [also_stripe.pk]
    assert rows(listed(client, "?system=stripe&error_class=validation&currency=EUR")) == []


def test_status_filter_defaults_to_open_and_retrying(client, itops, two):
    hit, miss = two
    SyncException.objects.filter(pk=miss.pk).update(status="resolved")
    client.force_login(itops)
    assert rows(listed(client)) == [hit.pk]
    assert rows(listed(client, "?status=resolved")) == [miss.pk]
    assert set(rows(listed(client, "?status=all"))) == {hit.pk, miss.pk}


def test_the_filter_is_kept_in_the_url_and_in_the_form(client, itops, two):
    client.force_login(itops)
    html = listed(client, "?system=stripe&error_class=mapping&q=gold")
    assert '<option value="stripe" selected>' in html
    assert '<option value="mapping" selected>' in html
    assert 'value="gold"' in html
    assert 'hx-push-url="true"' in html  # htmx filtering writes the query string back to the address bar
    # sort links and the export keep the filter
    assert "system=stripe" in html.split("Sort by amount")[0].rsplit("href=", 1)[1]
    assert "/exceptions/export.csv?" in html and "error_class=mapping" in html.split("/exceptions/export.csv?")[1][:200]


def test_an_unknown_filter_value_is_ignored_with_a_visible_note(client, itops, two):
    client.force_login(itops)
    html = listed(client, "?error_class=bogus")
    assert set(rows(html)) == {two[0].pk, two[1].pk}
    assert "Ignored error_class" in html


def test_htmx_filtering_answers_only_the_table(client, itops, two):
    client.force_login(itops)
    html = listed(client, "?system=stripe", **HTMX)
    assert html.lstrip().startswith('<div id="table"')
    assert rows(html) == [two[0].pk]


# --- search, sort, pages, grouping ------------------------------------------------------------
def test_search_looks_at_message_document_and_account(client, itops):
    by_message = exc(message="Customer record is locked by another user", document_number="ORD-1")
    by_document = exc(document_number="CM-4242", message="x")
    by_account = exc(account_name="Umbrella plc", document_number="ORD-2", message="y")
    client.force_login(itops)
    assert rows(listed(client, "?q=locked")) == [by_message.pk]
    assert rows(listed(client, "?q=cm-42")) == [by_document.pk]
    assert rows(listed(client, "?q=umbrella")) == [by_account.pk]


def test_sorting_by_age_amount_and_occurrences(client, itops):
    now = timezone.now()
    a = exc(amount=Decimal("10"), occurrences=5, first_seen=now - timedelta(hours=1))
    b = exc(amount=Decimal("30"), occurrences=1, first_seen=now - timedelta(hours=9))
    c = exc(amount=Decimal("20"), occurrences=9, first_seen=now - timedelta(hours=4))
    client.force_login(itops)
    assert rows(listed(client, "?sort=first_seen")) == [b.pk, c.pk, a.pk]
    assert rows(listed(client, "?sort=-amount")) == [b.pk, c.pk, a.pk]
    assert rows(listed(client, "?sort=amount")) == [a.pk, c.pk, b.pk]
    assert rows(listed(client, "?sort=-occurrences")) == [c.pk, a.pk, b.pk]


def test_the_first_column_shows_what_the_list_is_sorted_by(client, itops):
    import re

    now = timezone.now()
    old_but_recurring = exc(first_seen=now - timedelta(days=3), last_seen=now - timedelta(minutes=1))
    young_but_quiet = exc(first_seen=now - timedelta(hours=1), last_seen=now - timedelta(minutes=30))
    client.force_login(itops)

    def first_column(html):
        header = re.search(r"<thead[^>]*><tr>\s*<th[^>]*>(.*?)</th>", html, re.S).group(1)
        shown = re.findall(r'<td class="age" data-shown="(\w+)" data-at="([^"]+)"', html)
        return re.sub(r"<[^>]+>", "", header).strip(), shown

    html = listed(client)  # the default: last seen, most recent first
    header, shown = first_column(html)
    assert rows(html) == [old_but_recurring.pk, young_but_quiet.pk]
    assert header.startswith("Last seen") and {kind for kind, _ in shown} == {"last_seen"}
    assert [at for _, at in shown] == sorted((at for _, at in shown), reverse=True)  # the column reads in the sorted order
    assert '<option value="-last_seen" selected>Last seen, newest</option>' in html

    html = listed(client, "?sort=first_seen")  # age: oldest first
    header, shown = first_column(html)
    assert rows(html) == [old_but_recurring.pk, young_but_quiet.pk]
    assert header.startswith("Age") and {kind for kind, _ in shown} == {"first_seen"}
    assert [at for _, at in shown] == sorted(at for _, at in shown)


def test_pages_of_25_on_the_server(client, itops):
    made = [exc(document_number=f"ORD-{i:03d}", amount=Decimal(i + 1)) for i in range(30)]
    client.force_login(itops)
    first = rows(listed(client, "?sort=-amount"))
    second_html = listed(client, "?sort=-amount&page=2")
    assert len(first) == 25 and first[0] == made[-1].pk
    assert rows(second_html) == [e.pk for e in reversed(made[:5])]
    assert "26–30 of 30" in second_html


def test_a_recurring_failure_is_one_row_with_its_occurrence_count(client, itops):
    from sync.engine.exceptions import open_exception

    run = FlowRunFactory(status="failed", document_number="INV-5150")
    step = FlowStepFactory(flow_run=run, name="erp_invoice")
    for _ in range(3):
        open_exception(system="netsuite", error_class="not_found", message="Item SKU-42 not found", flow_run=run, step=step)
    client.force_login(itops)
    html = listed(client, "?document=INV-5150")
    assert len(rows(html)) == 1
    assert "3×" in html


def test_counts_partial_refreshes_itself_on_changes_and_every_30s(client, itops, two):
    client.force_login(itops)
    html = listed(client)
    assert 'hx-trigger="exceptionsChanged from:body, every 30s"' in html
    counts = listed(client, "?partial=counts", **HTMX)
    assert counts.lstrip().startswith('<div id="counts"')
    assert '<span class="n">2</span> open' in counts
    assert '<span class="n">1</span> mine' in counts  # the fixture assigned one to oscar


# --- permissions ----------------------------------------------------------------------------------
def _action_urls(e, edit_id: int) -> list[str]:
    base = f"/exceptions/{e.pk}"
    return [
        *(f"{base}/{a}/" for a in ("retry", "resolve", "ignore", "assign", "comment", "replay", "cancel")),
        f"{base}/edit-payload/",
        f"{base}/payload-edits/{edit_id}/approve/",
        f"{base}/payload-edits/{edit_id}/reject/",
        "/exceptions/bulk-retry/?status=active",
    ]


def test_an_executive_gets_403_on_every_action_and_nothing_changes(client, executive, revops):
    from monitoring.models import BulkJob, PayloadEdit

    e = exc(flow__flow_type="invoice_posting", error_class="mapping")
    edit = PayloadEdit.objects.create(exception=e, step=e.step, original={}, payload={"a": 1}, reason="r", requires_approval=True, requested_by=revops)
    client.force_login(executive)
    for url in _action_urls(e, edit.pk):
        assert client.get(url).status_code == 403, url
        post = client.post(url, {"note": "n", "reason": "r", "text": "t", "assignee": "erin", "confirm": "yes", "payload": "{}"})
        assert post.status_code == 403, url
        assert client.post(url, {"note": "n"}, **HTMX).status_code == 403, url
    e.refresh_from_db()
    edit.refresh_from_db()
    assert (e.status, e.retries, e.assignee_id) == ("open", 0, None)
    assert edit.status == "pending"
    assert not ExceptionComment.objects.exists() and not BulkJob.objects.exists()
    assert not AuditEntry.objects.filter(object_type="exception", object_id=str(e.pk)).exclude(action="open").exists()


def test_an_executive_sees_the_story_but_no_action_buttons(client, executive):
    e = exc()
    client.force_login(executive)
    queue = listed(client)
    assert e.document_number in queue
    for control in ("Retry…", "Resolve…", "Ignore…", "Retry all", 'class="inline assign"'):
        assert control not in queue, control
    detail = client.get(f"/exceptions/{e.pk}/").content.decode()
    assert "What happened" in detail and e.message in detail
    for control in ("Retry step", ">Resolve<", ">Ignore<", "Cancel flow", "Edit the step", 'name="text"'):
        assert control not in detail, control
    assert "can view exceptions but not act" in detail


# --- actions, audited with the user --------------------------------------------------------------------
def test_resolve_from_the_row_updates_the_row_in_place_and_is_audited(client, itops):
    e = exc()
    client.force_login(itops)
    panel = client.get(f"/exceptions/{e.pk}/resolve/", **HTMX).content.decode()
    assert panel.lstrip().startswith(f'<tbody id="exc-{e.pk}"') and 'name="note"' in panel
    response = client.post(f"/exceptions/{e.pk}/resolve/", {"note": "Added SKU-42 to NetSuite"}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tbody id="exc-{e.pk}"')
    assert "Resolved" in html
    assert response["HX-Trigger"] == '{"exceptionsChanged": {}}' or "exceptionsChanged" in response["HX-Trigger"]
    entry = AuditEntry.objects.get(object_type="exception", object_id=str(e.pk), action="resolve")
    assert (entry.actor, entry.actor_label, entry.note) == (itops, "oscar", "Added SKU-42 to NetSuite")
    assert entry.before["status"] == "open" and entry.after["status"] == "resolved" and entry.at is not None


def test_ignore_needs_a_reason_and_is_audited(client, finance):
    e = exc()
    client.force_login(finance)
    refused = client.post(f"/exceptions/{e.pk}/ignore/", {"reason": " "}, **HTMX).content.decode()
    assert "Say why this can be ignored" in refused
    e.refresh_from_db()
    assert e.status == "open"
    client.post(f"/exceptions/{e.pk}/ignore/", {"reason": "Test account"}, **HTMX)
    e.refresh_from_db()
    assert e.status == "ignored" and e.resolution_note == "Test account"
    assert AuditEntry.objects.get(object_id=str(e.pk), action="ignore").actor == finance


def test_assign_offers_users_who_may_act_and_is_audited(client, itops, revops, executive):
    e = exc()
    client.force_login(itops)
    html = listed(client)
    assert '<option value="rick"' in html and '<option value="oscar"' in html
    assert '<option value="erin"' not in html  # an executive cannot act, so cannot be assigned
    client.post(f"/exceptions/{e.pk}/assign/", {"assignee": "rick"}, **HTMX)
    e.refresh_from_db()
    assert e.assignee == revops
    entry = AuditEntry.objects.get(object_id=str(e.pk), action="assign")
    assert entry.actor == itops and entry.before["assignee"] is None and entry.after["assignee"] == "rick"
    refused = client.post(f"/exceptions/{e.pk}/assign/", {"assignee": "erin"}, **HTMX).content.decode()
    assert "no role that may act" in refused
    e.refresh_from_db()
    assert e.assignee == revops


def test_comment_is_stored_shown_and_audited(client, revops):
    e = exc()
    client.force_login(revops)
    response = client.post(f"/exceptions/{e.pk}/comment/", {"text": "Asked the CRM admin to fix the SKU"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="comments")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="comments"') and "Asked the CRM admin" in html
    assert ExceptionComment.objects.get(exception=e).author == revops
    assert AuditEntry.objects.get(object_id=str(e.pk), action="comment").actor == revops


def test_retry_shows_key_and_side_effects_first_then_requeues_the_step(client, itops):
    run = FlowRunFactory(status="failed", document_number="ORD-77")
    FlowStepFactory(flow_run=run, seq=1, name="erp_customer", status="succeeded", response_summary={"erp_customer_id": "CUST-9"})
    failed = FlowStepFactory(flow_run=run, seq=2, name="erp_sales_order", status="failed")
    e = SyncExceptionFactory(step=failed)
    client.force_login(itops)
    preview = client.get(f"/exceptions/{e.pk}/retry/", **HTMX).content.decode()
    assert failed.idempotency_key in preview
    assert "erp_customer" in preview and "CUST-9" in preview  # already done in NetSuite, not repeated
    e.refresh_from_db()
    assert e.status == "open"  # looking is not doing
    html = client.post(f"/exceptions/{e.pk}/retry/", **HTMX).content.decode()
    assert "Retrying" in html
    e.refresh_from_db()
    failed.refresh_from_db()
    assert (e.status, e.retries, failed.status) == ("retrying", 1, "pending")
    assert AuditEntry.objects.get(object_type="exception", object_id=str(e.pk), action="retry").actor == itops
    assert AuditEntry.objects.filter(object_type="flow", object_id=str(run.pk), action="retry_requested", actor=itops).count() == 1
    again = client.post(f"/exceptions/{e.pk}/retry/", **HTMX).content.decode()
    assert "already under way" in again  # a double click does not retry twice
    assert AuditEntry.objects.filter(object_type="flow", object_id=str(run.pk), action="retry_requested").count() == 1


def test_the_plain_form_fallback_redirects_back_with_a_message(client, itops):
    e = exc()
    client.force_login(itops)
    response = client.post(f"/exceptions/{e.pk}/resolve/", {"note": "done", "next": "/exceptions/?system=netsuite"})
    assert response.status_code == 302 and response["Location"] == "/exceptions/?system=netsuite"
    away = client.post(f"/exceptions/{exc().pk}/resolve/", {"note": "done", "next": "https://evil.example/"})
    assert away["Location"].startswith("/exceptions/")


def test_replay_sends_a_dead_letter_through_again(client, itops):
    event = InboxEventFactory()
    e = SyncExceptionFactory(
        step=None,
        flow_run=None,
        flow_type="",
        step_name="",
        inbox_event=event,
        document_number=event.source_event_id,
        correlation_id=None,
        account_name="",
        error_class="mapping",
    )
    client.force_login(itops)
    assert "Replay event" in client.get(f"/exceptions/{e.pk}/").content.decode()
    client.post(f"/exceptions/{e.pk}/replay/", **HTMX)
    event.refresh_from_db()
    e.refresh_from_db()
    assert event.status == InboxEvent.Status.RECEIVED
    assert e.status == "resolved" and "Replayed" in e.resolution_note
    assert AuditEntry.objects.get(object_type="inbox", object_id=str(event.pk), action="replay").actor == itops


def test_cancel_flow_needs_confirmation_and_runs_on_a_worker(client, itops, monkeypatch):
    from sync import dispatch

    sent = []
    monkeypatch.setattr(dispatch, "publish", lambda task, args, queue, countdown=None: sent.append((task.value, args, queue)) or True)
    e = exc()
    client.force_login(itops)
    unconfirmed = client.post(f"/exceptions/{e.pk}/cancel/", {"reason": "customer withdrew"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="actions").content.decode()
    assert "Confirm the cancellation" in unconfirmed and sent == []
    client.post(f"/exceptions/{e.pk}/cancel/", {"reason": "customer withdrew", "confirm": "yes"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="actions")
    assert sent == [("sync.cancel_flow", [e.flow_run_id, itops.pk, "customer withdrew"], "flows")]
    assert AuditEntry.objects.get(object_id=str(e.pk), action="cancel_flow_requested").actor == itops


# --- the detail page ---------------------------------------------------------------------------------------
def test_detail_tells_the_business_story_and_redacts_secrets(client, finance):
    e = exc(
        flow__flow_type="invoice_posting",
        flow__document_number="INV-31",
        flow__account_name="Hooli Inc.",
        document_number="INV-31",
        account_name="Hooli Inc.",
        message="Please enter value(s) for: Subsidiary",
        field="subsidiary",
        error_class="validation",
        payload={"headers": {"Authorization": "Bearer sk_live_123"}, "body": {"tranId": "INV-31", "password": "hunter2", "nested": [{"api_key": "k-1"}]}},
        response={"status_code": 400, "code": "USER_ERROR", "body": {"client_secret": "cs"}},
    )
    client.force_login(finance)
    html = client.get(f"/exceptions/{e.pk}/").content.decode()
    assert html.index("What happened") < html.index("Payload sent")  # business context first
    assert "posting invoice INV-31" in html.replace("<strong>", "").replace("</strong>", "")
    assert "Hooli Inc." in html and "Please enter value(s) for: Subsidiary" in html and "subsidiary" in html
    assert "HTTP 400" in html
    for secret in ("sk_live_123", "hunter2", "k-1", '"cs"'):
        assert secret not in html, secret
    assert html.count("•••") >= 4
    assert "Fix the field the target system named" in html  # suggested next action for validation


def test_detail_shows_the_trace_with_this_step_highlighted_and_the_auto_resolution(client, itops):
    from sync.engine.exceptions import resolve_for_step

    run = FlowRunFactory(status="failed")
    FlowStepFactory(flow_run=run, seq=1, name="validate", system="hub", status="succeeded")
    failed = FlowStepFactory(flow_run=run, seq=2, name="erp_sales_order", status="failed")
    e = SyncExceptionFactory(step=failed)
    resolve_for_step(failed)
    client.force_login(itops)
    html = client.get(f"/exceptions/{e.pk}/").content.decode()
    assert 'aria-current="step"' in html.split("2. erp_sales_order")[0].rsplit("<li", 1)[1]
    assert 'aria-current="step"' not in html.split("1. validate")[0].rsplit("<li", 1)[1]
    assert "Resolved automatically" in html


# --- edit payload, with a second approver on financial documents ---------------------------------------------
def test_a_financial_payload_edit_waits_for_a_second_permitted_user(client, revops, finance, make_user):
    other_finance = make_user("frank", "Finance")
    run = FlowRunFactory(
        status="failed",
        flow_type="invoice_posting",
        document_number="INV-88",
        context={"event": {"data": {"invoice_number": "INV-88", "tax_code": "DE19", "token": "t-secret"}}},
    )
    e = SyncExceptionFactory(step=FlowStepFactory(flow_run=run, name="erp_invoice"), error_class="mapping")
    client.force_login(revops)
    form = client.get(f"/exceptions/{e.pk}/").content.decode()
    assert "DE19" in form and "t-secret" not in form  # the editor sees the step input, secrets masked
    edited = '{"invoice_number": "INV-88", "tax_code": "DE-VAT-19", "token": "•••"}'
    client.post(f"/exceptions/{e.pk}/edit-payload/", {"payload": edited, "reason": "mapped the tax code"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="actions")
    edit = e.payload_edits.get()
    assert edit.status == "pending" and edit.requires_approval
    assert edit.payload == {"invoice_number": "INV-88", "tax_code": "DE-VAT-19", "token": "t-secret"}  # ••• kept the original value
    run.refresh_from_db()
    assert "payload_overrides" not in run.context  # not applied yet
    requested = AuditEntry.objects.get(object_id=str(e.pk), action="payload_edit_requested")
    assert requested.before["payload"]["tax_code"] == "DE19" and requested.after["payload"]["tax_code"] == "DE-VAT-19"

    # the requester cannot approve (and has no approval right anyway)
    assert client.post(f"/exceptions/{e.pk}/payload-edits/{edit.pk}/approve/").status_code == 403
    # a Finance user who made the edit cannot approve their own
    client.force_login(finance)
    own = SyncExceptionFactory(
        step=FlowStepFactory(flow_run=FlowRunFactory(flow_type="credit_memo", status="failed", context={"event": {"data": {"a": 1}}}), name="erp_credit_memo"),
        error_class="validation",
    )
    client.post(f"/exceptions/{own.pk}/edit-payload/", {"payload": '{"a": 2}', "reason": "fix"})
    own_edit = own.payload_edits.get()
    html = client.post(f"/exceptions/{own.pk}/payload-edits/{own_edit.pk}/approve/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="actions").content.decode()
    assert "A second person must approve" in html
    own_edit.refresh_from_db()
    assert own_edit.status == "pending"

    # a second permitted user approves: applied, kept beside the original, and the step retried
    client.force_login(other_finance)
    client.post(f"/exceptions/{e.pk}/payload-edits/{edit.pk}/approve/", {"note": "checked with tax team"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="actions")
    edit.refresh_from_db()
    run.refresh_from_db()
    e.refresh_from_db()
    assert edit.status == "approved" and edit.decided_by == other_finance
    assert run.context["payload_overrides"]["erp_invoice"]["tax_code"] == "DE-VAT-19"
    assert run.context["event"]["data"]["tax_code"] == "DE19"  # the original stays
    assert e.status == "retrying"
    approved = AuditEntry.objects.get(object_id=str(e.pk), action="payload_edit_approved")
    assert approved.actor == other_finance and approved.before["payload"]["tax_code"] == "DE19"
    assert AuditEntry.objects.filter(object_type="step", object_id=str(e.step_id), action="payload_edited", actor=other_finance).exists()


@pytest.mark.parametrize("meanwhile", ["step_succeeded", "flow_completed", "resolved_by_hand"])
def test_a_pending_edit_of_a_flow_that_has_since_moved_on_leaves_the_pending_state(client, revops, finance, make_user, meanwhile):
    """Finance edits a failed step; before a second approver looks, the flow gets past it another
    way. Approving must not dead-end on "cannot retry" and leave the edit pending for ever: it is
    marked superseded, says why, is audited, and a new edit may be made."""
    from sync.engine.exceptions import resolve_for_step

    approver = make_user("frank", "Finance")
    run = FlowRunFactory(
        status="failed", flow_type="payment_status", document_number="INV-91", context={"event": {"data": {"invoice_number": "INV-91", "amount": "10"}}}
    )
    step = FlowStepFactory(flow_run=run, name="map_payment", status="failed")
    e = SyncExceptionFactory(step=step, flow_run=run, error_class="validation", flow_type="payment_status")
    client.force_login(finance)
    client.post(f"/exceptions/{e.pk}/edit-payload/", {"payload": '{"invoice_number": "INV-91", "amount": "12"}', "reason": "amount per bank statement"})
    edit = e.payload_edits.get()
    assert edit.status == "pending"

    # meanwhile the flow moved on without the edit
    if meanwhile == "step_succeeded":  # a plain retry succeeded: the engine auto-resolves the exception
        FlowStep.objects.filter(pk=step.pk).update(status="succeeded")
        FlowRun.objects.filter(pk=run.pk).update(status="completed")
        step.refresh_from_db()
        resolve_for_step(step)
    elif meanwhile == "flow_completed":  # the run completed while the exception row stayed open
        FlowRun.objects.filter(pk=run.pk).update(status="completed")
    else:
        client.force_login(revops)
        client.post(f"/exceptions/{e.pk}/resolve/", {"note": "posted by hand in the ERP"})

    client.force_login(approver)
    html = client.post(f"/exceptions/{e.pk}/payload-edits/{edit.pk}/approve/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="actions").content.decode()
    edit.refresh_from_db()
    run.refresh_from_db()
    assert edit.status == "superseded", edit.status
    assert "Cannot retry" not in html and "superseded" in html.lower()
    assert edit.decided_at is not None and edit.decision_note  # says why
    assert "payload_overrides" not in run.context  # never applied to a flow that has moved on
    audit = AuditEntry.objects.get(object_type="exception", object_id=str(e.pk), action="payload_edit_superseded")
    assert audit.after["edit"] == edit.pk and audit.note == edit.decision_note
    assert not e.payload_edits.filter(status="pending").exists()
    # approving again says it is decided, it does not pretend to try
    client.post(f"/exceptions/{e.pk}/payload-edits/{edit.pk}/approve/")
    edit.refresh_from_db()
    assert edit.status == "superseded"


def test_a_non_financial_payload_edit_applies_and_retries_at_once(client, itops):
    run = FlowRunFactory(status="failed", flow_type="order_activation", context={"event": {"data": {"sku": "SKU-42"}}})
    e = SyncExceptionFactory(step=FlowStepFactory(flow_run=run, name="erp_sales_order"), error_class="validation")
    client.force_login(itops)
    client.post(f"/exceptions/{e.pk}/edit-payload/", {"payload": '{"sku": "SKU-0042"}', "reason": "renamed SKU"})
    run.refresh_from_db()
    e.refresh_from_db()
    assert run.context["payload_overrides"]["erp_sales_order"] == {"sku": "SKU-0042"}
    assert e.status == "retrying" and e.payload_edits.get().status == "approved"


def test_payload_edits_are_refused_for_other_error_classes_and_bad_json(client, itops):
    e = exc(error_class="timeout")
    client.force_login(itops)
    html = client.post(
        f"/exceptions/{e.pk}/edit-payload/", {"payload": '{"a": 1}', "reason": "x"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="actions"
    ).content.decode()
    assert "only for mapping or validation errors" in html
    v = exc(error_class="validation")
    bad = client.post(
        f"/exceptions/{v.pk}/edit-payload/", {"payload": "{not json", "reason": "x"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="actions"
    ).content.decode()
    assert "Not valid JSON" in bad
    assert not v.payload_edits.exists()


# --- saved views ----------------------------------------------------------------------------------------------
def test_saved_views_are_private_or_shared_with_a_role(client, itops, revops, make_user):
    from monitoring.models import SavedView

    colleague = make_user("ivan", "IT Operations")
    client.force_login(itops)
    client.post("/exceptions/views/", {"name": "NetSuite mapping", "query": "system=netsuite&error_class=mapping&junk=1"})
    group = itops.groups.get()
    client.post("/exceptions/views/", {"name": "Team: auth", "query": "error_class=auth", "group": group.pk})
    mine = SavedView.objects.get(name="NetSuite mapping")
    assert mine.query == "error_class=mapping&system=netsuite" and mine.group is None  # cleaned to known filters
    assert 'href="/exceptions/?error_class=mapping&amp;system=netsuite"' in listed(client)

    client.force_login(colleague)
    html = listed(client)
    assert ">Team: auth</a>" in html and ">NetSuite mapping</a>" not in html
    assert client.post(f"/exceptions/views/{SavedView.objects.get(name='Team: auth').pk}/delete/").status_code == 302
    assert SavedView.objects.filter(name="Team: auth").exists()  # only its owner may delete it

    client.force_login(revops)
    assert ">Team: auth</a>" not in listed(client)
    client.post("/exceptions/views/", {"name": "x", "query": "", "group": group.pk})
    assert not SavedView.objects.filter(owner=revops).exists()  # cannot share with a role one does not have


# --- CSV export -----------------------------------------------------------------------------------------------------
def test_csv_export_streams_the_filtered_list_with_currencies(client, finance, settings):
    settings.REPORTING_CURRENCY = "USD"
    exc(
        document_number="INV-1",
        account_name='=HYPERLINK("x")',
        currency="EUR",
        amount=Decimal("1000.50"),
        revenue_at_risk=Decimal("1085.00"),
        system="netsuite",
    )
    exc(document_number="ORD-2", system="stripe")
    client.force_login(finance)
    response = client.get("/exceptions/export.csv?system=netsuite")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["document"] for r in table] == ["INV-1"]
    row = table[0]
    assert (row["amount"], row["currency"], row["revenue_at_risk"], row["reporting_currency"]) == ("1000.50", "EUR", "1085.00", "USD")
    assert row["account"].startswith("'=")  # a formula is not run when finance opens the file
    assert row["status"] == "open" and row["url"].endswith(f"/exceptions/{SyncException.objects.get(document_number='INV-1').pk}/")


# --- root causes and bulk retry -----------------------------------------------------------------------------------------
def test_root_cause_groups_count_documents_and_link_to_the_filtered_queue(client, itops):
    for i in range(3):
        exc(cause_key="sku42", document_number=f"ORD-{i}", revenue_at_risk=Decimal("100"), message="Item SKU-42 not found")
    exc(cause_key="auth", document_number="INV-9", revenue_at_risk=Decimal("7"), system="stripe", message="Invalid API key")
    client.force_login(itops)
    html = client.get("/exceptions/groups/").content.decode()
    first, second = html.index('id="cause-sku42"'), html.index('id="cause-auth"')
    assert first < second  # the biggest group first
    group_row = html[first:second]
    assert "Item SKU-42 not found" in group_row and "300.00" in group_row
    assert 'href="/exceptions/?cause=sku42"' in group_row
    assert "/exceptions/bulk-retry/?cause=sku42&amp;status=open" in group_row  # retry the whole group
    assert len(rows(listed(client, "?cause=sku42"))) == 3


def test_bulk_retry_dry_run_shows_the_exact_filtered_count_and_acts_on_nothing(client, itops):
    for i in range(4):
        exc(system="netsuite", document_number=f"ORD-{i}")
    exc(system="stripe")
    client.force_login(itops)
    html = client.get("/exceptions/bulk-retry/?system=netsuite").content.decode()
    assert 'data-matched="4"' in html and "Retry 4 exceptions now" in html
    assert html.count("q2c-") + html.count("flow-") >= 4  # the idempotency keys are listed
    assert not SyncException.objects.filter(status="retrying").exists()


def test_bulk_retry_acts_on_exactly_the_filtered_set_and_refuses_a_stale_count(client, itops):
    from monitoring.models import BulkJob

    netsuite = [exc(system="netsuite") for _ in range(3)]
    exc(system="stripe")
    client.force_login(itops)
    stale = client.post("/exceptions/bulk-retry/", {"query": "system=netsuite", "expected_total": "2"}, **HTMX).content.decode()
    assert "now matches 3" in stale and not BulkJob.objects.exists()
    html = client.post("/exceptions/bulk-retry/", {"query": "system=netsuite", "expected_total": "3"}, **HTMX).content.decode()
    job = BulkJob.objects.get()
    assert sorted(job.items.values_list("exception_id", flat=True)) == sorted(e.pk for e in netsuite)
    assert job.total == 3 and job.query == "system=netsuite" and job.created_by == itops
    assert f'hx-get="/exceptions/bulk-jobs/{job.pk}/"' in html and 'hx-trigger="every 1s"' in html  # progress polls


def test_bulk_job_progress_stops_polling_when_done(client, itops):
    from monitoring.models import BulkJob

    job = BulkJob.objects.create(total=4, retried=2, status="running", created_by=itops)
    client.force_login(itops)
    running = client.get(f"/exceptions/bulk-jobs/{job.pk}/", **HTMX)
    assert running.status_code == 200 and "50%" in running.content.decode() and 'hx-trigger="every 1s"' in running.content.decode()
    BulkJob.objects.filter(pk=job.pk).update(retried=3, skipped=1, status="done")
    done = client.get(f"/exceptions/bulk-jobs/{job.pk}/", **HTMX)
    assert done.status_code == 286  # htmx stops polling
    assert "100%" in done.content.decode() and "every 1s" not in done.content.decode()


def test_a_bulk_job_is_worked_through_once_even_when_run_twice(itops):
    from monitoring.exceptions.filters import ExceptionFilterSet
    from monitoring.exceptions.services import bulk_retry_run, bulk_retry_start
    from monitoring.models import BulkJob

    made = [exc(system="netsuite") for _ in range(5)]
    closed = exc(system="netsuite")
    job = bulk_retry_start(user=itops, filters=ExceptionFilterSet({"system": "netsuite"}))
    SyncException.objects.filter(pk=closed.pk).update(status="resolved")  # closed meanwhile: skipped, not retried
    bulk_retry_run(job_id=job.pk)
    bulk_retry_run(job_id=job.pk)  # a redelivered message
    job = BulkJob.objects.get(pk=job.pk)
    assert (job.status, job.total, job.retried, job.skipped, job.failed, job.percent) == ("done", 6, 5, 1, 0, 100)
    for e in made:
        assert AuditEntry.objects.filter(object_type="flow", object_id=str(e.flow_run_id), action="retry_requested").count() == 1
    assert FlowStep.objects.filter(pk__in=[e.step_id for e in made], status="pending").count() == 5
    assert FlowRun.objects.get(pk=closed.flow_run_id).status == "failed"
