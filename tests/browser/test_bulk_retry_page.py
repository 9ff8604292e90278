"""The bulk-retry page in headless Chromium: once the job starts, the page is the job's — its
heading, its progress, its URL — and never still "dry run, nothing retried yet"."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from monitoring.models import BulkJob
from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def published(monkeypatch):
    """The job's Celery message, kept here (no worker in this test; none left in the broker)."""
    from sync import dispatch

    sent = []
    monkeypatch.setattr(dispatch, "publish", lambda name, **kw: sent.append((name, kw)) or True)
    return sent


def test_starting_a_bulk_retry_turns_the_dry_run_page_into_the_jobs_page(login, itops, live_server, published):
    for n in range(3):
        run = FlowRunFactory(status="failed", document_number=f"ORD-BULK-{n}")
        SyncExceptionFactory(step=FlowStepFactory(flow_run=run, seq=1), cause_key="bulk-page-cause")
    page = login(itops)
    page.goto(f"{live_server.url}/exceptions/bulk-retry/?cause=bulk-page-cause")
    expect(page.locator("h1")).to_have_text("Bulk retry: dry run")
    expect(page.locator("main")).to_contain_text("Nothing has been retried yet")

    page.click("button:has-text('Retry 3 exceptions now')")
    expect(page.locator("#bulk")).to_contain_text("0 of 3 processed")  # the job started
    job = BulkJob.objects.get()
    expect(page.locator("h1")).to_have_text(f"Bulk retry #{job.pk}")
    expect(page.locator("main")).not_to_contain_text("dry run")
    expect(page.locator("main")).not_to_contain_text("Nothing has been retried yet")
    expect(page).to_have_url(re.compile(rf"/exceptions/bulk-jobs/{job.pk}/$"))  # a reload shows the job, not a new dry run
    assert [name for name, _ in published] == ["monitoring.bulk_retry"]
