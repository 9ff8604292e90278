"""The Reconciliation screen and the Overview's reconciliation figures: nothing but what runs
produced. The run rows here are written directly (the engine has its own end-to-end test,
tests/sync/test_reconciliation.py): this checks what the screen shows for them."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from sync.models import ReconciliationBreak, ReconciliationRun

pytestmark = pytest.mark.django_db


def _run(**extra) -> ReconciliationRun:
    now = timezone.now()
    fields = {
        "status": "succeeded",
        "began_at": now - timedelta(seconds=42),
        "finished_at": now,
        "records": {"crm": 120, "billing": 118, "erp": 119},
        "customers_checked": 40,
        "documents_checked": 80,
        "documents_matched": 77,
        "breaks_found": 3,
        "breaks_by_type": {"amount_mismatch": {"count": 2, "value": "75.00"}, "missing_in_erp": {"count": 1, "value": "990.00"}},
        "breaks_value": Decimal("1065.00"),
        **extra,
    }
    return ReconciliationRun.objects.create(**fields)


def _break(run, number, kind="amount_mismatch", value="37.50", age_days=45, **extra) -> ReconciliationBreak:
    return ReconciliationBreak.objects.create(
        run=run,
        key=f"invoice:{number}:{kind}:erp",
        break_type=kind,
        document_type="invoice",
        document_number=number,
        deal_id=f"ORD-{number}",
        account_name="=cmd|' /C calc'!A0",
        system="erp",
        rule="invoice total: billing vs ERP",
        currency="USD",
        billing_value=Decimal("100.00"),
        erp_value=Decimal("137.50"),
        sides={
            "billing": {"ref": "in_123", "value": "100.00", "currency": "USD", "status": "paid"},
            "erp": {"ref": "77", "value": "137.50", "currency": "USD", "status": "paid"},
        },
        difference=Decimal("37.50"),
        difference_reporting=Decimal("37.50"),
        value_reporting=Decimal(value),
        document_date=(run.began_at - timedelta(days=age_days)).date(),
        first_seen=run.began_at,
        **extra,
    )


def test_no_run_yet_says_so_on_the_page_and_the_overview(client, executive):
    client.force_login(executive)
    page = client.get("/reconciliation/").content.decode()
    assert "No reconciliation has run yet" in page
    assert "Run now" not in page  # an executive may look, not start runs
    overview = client.get("/").content.decode()
    assert "No reconciliation run yet" in overview and "open reconciliation break" not in overview


def test_the_page_shows_the_run_its_breaks_side_by_side_ageing_and_links(client, finance):
    run = _run()
    _break(run, "INV-1", age_days=45)
    _break(run, "INV-2", age_days=10)
    _break(run, "INV-3", kind="missing_in_erp", value="990.00", age_days=100)
    client.force_login(finance)
    page = client.get("/reconciliation/").content.decode()
    assert f"Run #{run.pk}" in page and "Run now" in page
    assert 'data-figure="match-rate">96.3%' in page  # 77 of 80
    assert 'data-break="invoice:INV-1:amount_mismatch:erp"' in page
    assert 'data-side="billing"' in page and "in_123" in page
    assert "/deals/ORD-INV-1/" in page and "/traces/?q=ORD-INV-1" in page
    assert 'class="q2c-chart" data-plotly=' in page and "<script>" not in page.split("</header>")[-1]
    ages = [cell.split(">")[1].split("<")[0] for cell in page.split('data-figure="age-n"')[1:]]
    assert ages == ["1", "1", "0", "1"]  # 10 d, 45 d, none in 61–90, 100 d
    only_missing = client.get(f"/reconciliation/?run={run.pk}&break_type=missing_in_erp", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="table").content.decode()
    assert only_missing.lstrip().startswith('<div id="table"') and "INV-3" in only_missing and "INV-1" not in only_missing


def test_csv_export_has_both_sides_and_no_formula_cells(client, finance):
    run = _run()
    _break(run, "INV-1")
    client.force_login(finance)
    response = client.get(f"/reconciliation/?run={run.pk}&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    row = rows[0]
    assert (row["billing_value"], row["erp_value"], row["difference"], row["deal_id"]) == ("100.0000", "137.5000", "37.5000", "ORD-INV-1")
    assert row["account"].startswith("'=")
    assert row["deal_url"].endswith("/deals/ORD-INV-1/")


def test_run_now_queues_one_run_and_the_progress_polls_until_it_is_done(client, finance, executive):
    client.force_login(executive)
    assert client.post("/reconciliation/run/").status_code == 403
    client.force_login(finance)
    response = client.post("/reconciliation/run/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    run = ReconciliationRun.objects.get()
    assert (run.status, run.trigger, run.requested_by.username) == ("queued", "screen", "fiona")
    body = response.content.decode()
    assert f"?part=progress&amp;following={run.pk}" in body and 'hx-trigger="every 2s"' in body
    client.post("/reconciliation/run/", HTTP_HX_REQUEST="true")
    assert ReconciliationRun.objects.count() == 1  # one at a time
    ReconciliationRun.objects.filter(pk=run.pk).update(status="running", progress=40, phase="reading stripe")
    polled = client.get(f"/reconciliation/?part=progress&following={run.pk}", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-figure="progress">40%' in polled and "reading stripe" in polled
    ReconciliationRun.objects.filter(pk=run.pk).update(status="succeeded", progress=100)
    done = client.get(f"/reconciliation/?part=progress&following={run.pk}", HTTP_HX_REQUEST="true")
    assert done["HX-Refresh"] == "true"


def test_the_overview_shows_the_last_runs_figures(client, executive):
    _run()
    client.force_login(executive)
    overview = client.get("/").content.decode()
    assert 'data-figure="recon-last-run"' in overview and "96.3% matched" in overview
