"""SLA policies in time: due dates, business calendars, month-end targets, breach marking, editing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.utils import timezone

from monitoring.models import SlaHoliday, SlaPolicy
from monitoring.sla.policies import sla_due_at
from monitoring.sla.services import sla_mark_breaches
from sync.models import AuditEntry, FlowRun, FlowType
from tests.factories import FlowRunFactory

UTC = UTC
pytestmark = pytest.mark.django_db


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_24x7_policy_adds_the_target_to_the_start():
    assert sla_due_at(FlowType.ORDER_ACTIVATION, at(2026, 11, 13, 10, 0)) == at(2026, 11, 13, 10, 15)


def test_a_flow_type_without_a_policy_has_no_due_time():
    assert sla_due_at(FlowType.CUSTOMER_SYNC, at(2026, 11, 13, 10, 0)) is None


def test_a_business_calendar_counts_only_working_hours_and_skips_weekends_and_holidays():
    SlaPolicy.objects.filter(flow_type=FlowType.INVOICE_POSTING).update(
        calendar=SlaPolicy.Calendar.BUSINESS, target_seconds=3600, business_hours_start=time(9), business_hours_end=time(17), time_zone="UTC"
    )
    friday_late = at(2026, 11, 13, 16, 30)  # 30 min left on Friday, the rest on Monday morning
    assert sla_due_at(FlowType.INVOICE_POSTING, friday_late) == at(2026, 11, 16, 9, 30)
    SlaHoliday.objects.create(date=date(2026, 11, 16), name="Company day off")
    assert sla_due_at(FlowType.INVOICE_POSTING, friday_late) == at(2026, 11, 17, 9, 30)
    saturday = at(2026, 11, 14, 12, 0)
    assert sla_due_at(FlowType.INVOICE_POSTING, saturday) == at(2026, 11, 17, 10, 0)


def test_the_business_calendar_works_in_the_policy_time_zone():
    SlaPolicy.objects.filter(flow_type=FlowType.INVOICE_POSTING).update(
        calendar=SlaPolicy.Calendar.BUSINESS, target_seconds=1800, business_hours_start=time(9), business_hours_end=time(17), time_zone="America/New_York"
    )
    # 13:00 UTC is 08:00 in New York (EST): the clock starts at 09:00 local = 14:00 UTC
    assert sla_due_at(FlowType.INVOICE_POSTING, at(2026, 11, 13, 13, 0)) == at(2026, 11, 13, 14, 30)


def test_the_stricter_month_end_target_applies_in_the_close_window():
    SlaPolicy.objects.filter(flow_type=FlowType.INVOICE_POSTING).update(month_end_target_seconds=900, month_end_days_before=2, month_end_days_after=3)
    assert sla_due_at(FlowType.INVOICE_POSTING, at(2026, 11, 30, 10, 0)) == at(2026, 11, 30, 10, 15)  # last day of the month
    assert sla_due_at(FlowType.INVOICE_POSTING, at(2026, 12, 3, 10, 0)) == at(2026, 12, 3, 10, 15)  # third day of the next
    assert sla_due_at(FlowType.INVOICE_POSTING, at(2026, 11, 15, 10, 0)) == at(2026, 11, 15, 11, 0)  # mid-month: normal target


def test_the_sweep_marks_each_overdue_running_flow_breached_exactly_once():
    now = timezone.now()
    late = FlowRunFactory(status=FlowRun.Status.RUNNING, business_started_at=now - timedelta(minutes=30), sla_due_at=now - timedelta(minutes=15))
    fine = FlowRunFactory(status=FlowRun.Status.RUNNING, business_started_at=now - timedelta(minutes=5), sla_due_at=now + timedelta(minutes=10))
    done = FlowRunFactory(
        status=FlowRun.Status.COMPLETED,
        business_started_at=now - timedelta(hours=2),
        business_completed_at=now - timedelta(hours=1, minutes=55),
        finished_at=now - timedelta(hours=1, minutes=55),
        sla_due_at=now - timedelta(hours=1, minutes=45),
    )
    first = sla_mark_breaches()
    assert [b.id for b in first] == [late.pk]
    assert sla_mark_breaches() == []
    assert FlowRun.objects.get(pk=late.pk).sla_breached
    assert not FlowRun.objects.get(pk=fine.pk).sla_breached and not FlowRun.objects.get(pk=done.pk).sla_breached


def _policy_post(policy, **changes):
    data = {
        "target_minutes": policy.target_seconds / 60,
        "objective_pct": "99",
        "at_risk_pct": "80",
        "calendar": "24x7",
        "business_hours_start": "09:00",
        "business_hours_end": "17:00",
        "time_zone": "UTC",
        "month_end_minutes": "",
        "month_end_days_before": "2",
        "month_end_days_after": "3",
        **changes,
    }
    return {f"p{policy.pk}-{k}": v for k, v in data.items()}


def test_an_executive_sees_no_policy_form_and_a_post_is_refused(client, executive):
    client.force_login(executive)
    policy = SlaPolicy.objects.get(flow_type=FlowType.ORDER_ACTIVATION)
    html = client.get("/sla/").content.decode()
    assert f"/sla/policies/{policy.pk}/" not in html and "read-only for your role" in html
    response = client.post(f"/sla/policies/{policy.pk}/", _policy_post(policy, target_minutes="60"))
    assert response.status_code == 403
    assert SlaPolicy.objects.get(pk=policy.pk).target_seconds == 900


def test_revops_edits_a_policy_and_the_change_is_audited(client, revops):
    client.force_login(revops)
    policy = SlaPolicy.objects.get(flow_type=FlowType.ORDER_ACTIVATION)
    assert f"/sla/policies/{policy.pk}/" in client.get("/sla/").content.decode()
    response = client.post(f"/sla/policies/{policy.pk}/", _policy_post(policy, target_minutes="20", month_end_minutes="10", calendar="business"))
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.target_seconds, policy.month_end_target_seconds, policy.calendar, policy.updated_by) == (1200, 600, "business", revops)
    entry = AuditEntry.objects.get(object_type="sla_policy", action="update")
    assert entry.actor_label == "rick" and entry.before["target_seconds"] == "900" and entry.after["target_seconds"] == "1200"


def test_a_month_end_target_looser_than_the_normal_one_is_refused_with_a_reason(client, revops):
    client.force_login(revops)
    policy = SlaPolicy.objects.get(flow_type=FlowType.ORDER_ACTIVATION)
    response = client.post(f"/sla/policies/{policy.pk}/", _policy_post(policy, month_end_minutes="45"))
    assert response.status_code == 400
    assert "must be stricter" in response.content.decode()
    assert SlaPolicy.objects.get(pk=policy.pk).month_end_target_seconds is None
