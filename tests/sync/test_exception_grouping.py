"""Exceptions group like Sentry issues: a recurring failure is one row; one cause spans documents."""

import pytest

from sync.engine.exceptions import open_exception, resolve_for_step
from sync.models import SyncException
from tests.factories import FlowStepFactory

pytestmark = pytest.mark.django_db


def test_the_same_failure_recurring_on_a_step_is_one_row_with_a_count():
    step = FlowStepFactory()
    first = open_exception(system="netsuite", error_class="unavailable", message="NetSuite is down (503)", flow_run=step.flow_run, step=step)
    again = open_exception(system="netsuite", error_class="unavailable", message="NetSuite is down (503)", flow_run=step.flow_run, step=step)
    assert first.pk == again.pk and again.occurrences == 2
    assert SyncException.objects.count() == 1


def test_one_cause_on_many_documents_shares_a_cause_key_but_not_a_row():
    a = FlowStepFactory(flow_run__document_number="INV-20984")
    b = FlowStepFactory(flow_run__document_number="INV-20991")
    ea = open_exception(system="netsuite", error_class="validation", message="Credit exceeds the balance of INV-20984", flow_run=a.flow_run, step=a)
    eb = open_exception(system="netsuite", error_class="validation", message="Credit exceeds the balance of INV-20991", flow_run=b.flow_run, step=b)
    assert ea.pk != eb.pk
    assert ea.cause_key == eb.cause_key


def test_different_causes_do_not_group():
    a, b = FlowStepFactory(), FlowStepFactory()
    ea = open_exception(system="netsuite", error_class="mapping", message="No NetSuite item for SKU SKU-42", flow_run=a.flow_run, step=a)
    eb = open_exception(system="netsuite", error_class="mapping", message="No NetSuite item for SKU SKU-43", flow_run=b.flow_run, step=b)
    assert ea.cause_key != eb.cause_key


def test_an_exception_carries_business_context_and_resolves_itself_when_its_step_succeeds():
    step = FlowStepFactory(flow_run__document_number="ORD-7", flow_run__account_name="Globex", flow_run__amount="1200.00", flow_run__amount_reporting="1200.00")
    exc = open_exception(system="netsuite", error_class="timeout", message="Read timed out", flow_run=step.flow_run, step=step)
    assert (exc.document_number, exc.account_name, str(exc.revenue_at_risk)) == ("ORD-7", "Globex", "1200.00")
    step.flow_run.refresh_from_db()
    assert step.flow_run.had_exception
    assert resolve_for_step(step) == 1
    exc.refresh_from_db()
    assert exc.status == "resolved" and exc.resolved_at is not None


# --- one root cause is one group, whatever the volatile parts of its message ---------------------
# What the NetSuite connector says of one unknown SKU on three orders, where it sits on a
# different line of each: the line index is in the message and in the field, and split one
# cause into three groups that read the same.
LEGACY_ON_THREE_LINES = [
    (f"No NetSuite item has itemId 'LEGACY-42' (SKU in lines[{i}].sku); add the item or fix the SKU", f"lines[{i}].sku") for i in (1, 2, 3)
]


def _open_on_new_runs(system: str, error_class: str, messages: list[tuple[str, str]]) -> list[SyncException]:
    opened = []
    for message, field in messages:
        step = FlowStepFactory()
        opened.append(open_exception(system=system, error_class=error_class, message=message, field=field, flow_run=step.flow_run, step=step))
    return opened


def test_one_unknown_sku_on_different_lines_is_one_root_cause():
    excs = _open_on_new_runs("netsuite", "mapping", LEGACY_ON_THREE_LINES)
    assert len({e.pk for e in excs}) == 3  # three documents, three rows …
    assert len({e.cause_key for e in excs}) == 1  # … one cause


@pytest.mark.parametrize(
    "messages",
    [
        # amounts differ per invoice
        [("Credit 120.00 exceeds the remaining balance 80.00", ""), ("Credit 1,500.00 exceeds the remaining balance 95.50", "")],
        # timestamps and dates
        [
            ("Effective date 2026-11-23T10:00:00Z is before the contract start 2026-11-01", ""),
            ("Effective date 2026-12-02T08:15:30+01:00 is before the contract start 2026-12-01", ""),
        ],
        # vendor record ids (Stripe, Salesforce) and long numbers
        [("No such customer: 'cus_Q1w2E3r4T5y6U7i8'", ""), ("No such customer: 'cus_Zx9Cv8Bn7Mm6Ll5Kk4'", "")],
        [("Record 0015g00000AbCdEAAV is locked by another user", ""), ("Record 0015g00000XyZaBQAZ is locked by another user", "")],
        [("Internal error 8812739 (request 1700000001.123)", ""), ("Internal error 9912345 (request 1700000999.5)", "")],
    ],
)
def test_volatile_parts_of_a_message_do_not_split_a_cause(messages):
    excs = _open_on_new_runs("netsuite", "validation", messages)
    assert len({e.cause_key for e in excs}) == 1, [e.message for e in excs]


@pytest.mark.parametrize(
    "messages",
    [
        [
            ("No NetSuite item has itemId 'LEGACY-42' (SKU in lines[1].sku)", "lines[1].sku"),
            ("No NetSuite item has itemId 'LEGACY-43' (SKU in lines[1].sku)", "lines[1].sku"),
        ],
        [("No such price: 'price_legacy_2023'", ""), ("No such price: 'price_legacy_2024'", "")],
        [("Currency 'EUR' is not enabled in NetSuite", ""), ("Currency 'GBP' is not enabled in NetSuite", "")],
        [("Legal entity 'US01' has no NetSuite subsidiary id", ""), ("Legal entity 'DE01' has no NetSuite subsidiary id", "")],
    ],
)
def test_what_names_the_cause_still_tells_causes_apart(messages):
    excs = _open_on_new_runs("netsuite", "mapping", messages)
    assert len({e.cause_key for e in excs}) == 2


def test_the_root_cause_page_shows_one_group_for_the_unknown_sku_on_three_lines(client, itops):
    _open_on_new_runs("netsuite", "mapping", LEGACY_ON_THREE_LINES)
    client.force_login(itops)
    html = client.get("/exceptions/groups/").content.decode()
    assert html.count("LEGACY-42") == 1, "one group, with one sample message"


def test_the_migration_merges_causes_recorded_with_the_old_rule_and_keeps_recurrences_on_their_row():
    import hashlib
    import importlib
    import re

    from django.apps import apps

    migration = importlib.import_module("sync.migrations.0012_exception_cause_keys_without_volatile_parts")
    old_rule = re.compile(r"\b(?:[0-9a-f]{8}-[0-9a-f-]{27,}|[0-9a-f]{24,}|\d{6,}|\d+(?:\.\d+)?s)\b", re.I)

    def sha(*parts):
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]

    rows = []
    for message, field in LEGACY_ON_THREE_LINES:  # as the engine recorded them before
        step = FlowStepFactory()
        cause = sha("netsuite", "mapping", field, old_rule.sub("#", message).strip())
        rows.append(
            SyncException.objects.create(
                fingerprint=sha(str(step.flow_run_id), step.name, "mapping", cause, ""),
                cause_key=cause,
                flow_run=step.flow_run,
                step=step,
                step_name=step.name,
                system="netsuite",
                error_class="mapping",
                message=message,
                field=field,
                first_seen=step.flow_run.business_started_at,
                last_seen=step.flow_run.business_started_at,
            )
        )
    assert len({r.cause_key for r in rows}) == 3

    migration.recompute(apps, None)

    after = [SyncException.objects.get(pk=r.pk) for r in rows]
    assert len({r.cause_key for r in after}) == 1
    again = open_exception(system="netsuite", error_class="mapping", message=rows[0].message, field=rows[0].field, flow_run=rows[0].flow_run, step=rows[0].step)
    assert again.pk == rows[0].pk and again.occurrences == 2  # the same failure, the same row
