"""The queue's FilterSet on its own: defaults, values that fall back, and links that read the same."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from monitoring.exceptions.filters import ExceptionFilterSet
from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory

pytestmark = pytest.mark.django_db


def test_a_value_that_does_not_validate_falls_back_to_its_default_and_is_named():
    filters = ExceptionFilterSet(QueryDict("status=bogus&amount_min=1,000&currency=eur&q=%20gold%20"))
    assert list(filters.invalid) == ["status"] and filters.invalid["status"].startswith("'bogus' is not one of: active, all,")
    assert (filters.data["status"], filters.data["amount_min"], filters.data["currency"], filters.data["q"]) == ("active", "1,000", "eur", "gold")
    assert filters.querystring() == "currency=eur&amount_min=1%2C000&q=gold"


def test_links_keep_the_order_saved_views_were_stored_in():
    filters = ExceptionFilterSet(QueryDict("q=x&sort=-amount&system=stripe&status=all&cause=c&account=Ini"))
    assert filters.querystring() == "status=all&system=stripe&cause=c&account=Ini&q=x&sort=-amount"
    assert filters.describe() == "status all, system stripe, root cause c, account Ini, search x"


def test_an_empty_sort_falls_back_to_the_default_order(client, itops):
    now = timezone.now()
    older = SyncExceptionFactory(step=FlowStepFactory(flow_run=FlowRunFactory(status="failed")), last_seen=now - timedelta(hours=2))
    newer = SyncExceptionFactory(step=FlowStepFactory(flow_run=FlowRunFactory(status="failed")), last_seen=now - timedelta(hours=1))
    client.force_login(itops)
    page = client.get("/exceptions/?sort=")
    html = page.content.decode()
    assert page.status_code == 200 and "Ignored sort" in html
    assert html.index(f'id="exc-{newer.pk}"') < html.index(f'id="exc-{older.pk}"')
    refused = client.get("/api/v1/exceptions/?sort=")
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "sort"
