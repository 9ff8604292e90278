"""No secret leaves the server: each kind of secret, on every way out (trace page, flows API,
exception detail page and API for every role, CSV export, log lines, alerts).

One step, one exception and one audit entry carry all the kinds at once; each way out is read
whole and must contain none of them."""

from __future__ import annotations

import json
import logging

import pytest

from q2c_portal.redaction import MASK, RedactingFilter, luhn_valid, redact, redact_text, restore_redacted
from sync.models import AuditEntry
from tests.factories import FlowRunFactory, FlowStepFactory, SyncExceptionFactory

# one of each kind; the test reads every way out for each of these strings
SECRETS = {
    "bearer header": "eyBearerCredential42",
    "basic header": "dXNlcjpodW50ZXIy",
    "token header": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
    "cookie": "sessionid=abc123cookie",
    "api key (by key)": "k-apikey-777",
    "api key (by value)": "sk_live_51HsecretStripeKey",
    "webhook secret (by value)": "whsec_5ecretSigning",
    "password": "hunter2-pw",
    "client secret": "cs-client-secret-9",
    "access token": "at-access-token-1",
    "card (spaces)": "4111 1111 1111 1111",
    "card (dashes)": "5555-5555-5555-4444",
    "card (plain)": "378282246310005",
    "iban": "DE89 3704 0044 0532 0130 00",
    "iban (compact)": "GB82WEST12345698765432",
    "bank account": "000123456789",
}
HEADERS = {
    "Authorization": f"Bearer {SECRETS['bearer header']}",
    "Proxy-Authorization": f"Basic {SECRETS['basic header']}",
    "Cookie": SECRETS["cookie"],
    "X-Api-Key": SECRETS["api key (by key)"],
}
BODY = {
    "customer": "Hooli Inc.",
    "password": SECRETS["password"],
    "client_secret": SECRETS["client secret"],
    "accessToken": SECRETS["access token"],
    "note": f"paid by card {SECRETS['card (spaces)']} / {SECRETS['card (dashes)']} and {SECRETS['card (plain)']}",
    "bank": {"iban_text": f"wire to {SECRETS['iban']}", "ref": SECRETS["iban (compact)"], "account_number": SECRETS["bank account"]},
    "config": f"stripe key {SECRETS['api key (by value)']} signing {SECRETS['webhook secret (by value)']}",
    "curl": f'curl -H "Authorization: Token {SECRETS["token header"]}"',
}
MESSAGE = (
    f"401 from billing: Authorization: Token {SECRETS['token header']} refused for card {SECRETS['card (spaces)']}, "
    f"key {SECRETS['api key (by value)']}, iban {SECRETS['iban']}, Bearer {SECRETS['bearer header']}"
)


def assert_no_secret(text: str, where: str) -> None:
    leaked = [kind for kind, secret in SECRETS.items() if secret in text or secret.replace(" ", "") in text.replace(" ", "")]
    assert leaked == [], f"{where} shows {leaked}"


# --- the rules themselves ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: Bearer abc.def-1", "Authorization: •••"),
        ("Bearer abc", "Bearer •••"),
        ("header basic dXNlcjpwYXNz", "header basic •••"),
        ("Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "Token •••"),
        ("?api_key=abc&page=2", "?api_key=•••&page=2"),
        ('{"password": "hunter2", "n": 1}', '{"password": "•••", "n": 1}'),
        ("cookie=sessionid", "cookie=•••"),
        ("uses sk_test_abc123 and rk_live_x9", "uses ••• and •••"),
        ("card 4111 1111 1111 1111.", "card •••."),
        ("iban DE89 3704 0044 0532 0130 00 paid", "iban ••• paid"),
    ],
)
def test_each_kind_of_secret_in_text_is_masked(text, shown):
    assert redact_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "Token expired, log in again",  # a word after Token, not a credential
        "card 4111-1111-1111-1112",  # not Luhn-valid
        "ts 1764800000000 ms",  # a 13-digit timestamp that fails Luhn stays
        "total 4111111111111111.00 EUR",  # a decimal amount is not a card
        "correlation 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "in_1234567890123452 is the invoice id",  # digits inside an id
        "DE19 tax code, INV-31, 2026-11-23 10:15",
        "Please enter value(s) for: Subsidiary",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact_text(text) == text


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005") and not luhn_valid("4111111111111112")


def test_secret_keys_any_case_any_depth_and_the_original_comes_back_for_replay():
    original = {"headers": HEADERS, "body": BODY, "lines": [{"Api-Key": "k1", "sku": "SKU-1"}]}
    shown = redact(original)
    assert shown["headers"] == {k: MASK for k in HEADERS}
    assert shown["body"]["password"] == shown["body"]["accessToken"] == shown["body"]["bank"]["account_number"] == MASK
    assert shown["lines"] == [{"Api-Key": MASK, "sku": "SKU-1"}] and shown["body"]["customer"] == "Hooli Inc."
    assert_no_secret(json.dumps(shown), "redact()")
    # an editor sends back what they saw with one field changed: every masked value is the original again
    edited = json.loads(json.dumps(shown))
    edited["body"]["customer"] = "Hooli Ltd."
    restored = restore_redacted(edited, original)
    assert restored["body"] == {**BODY, "customer": "Hooli Ltd."} and restored["headers"] == HEADERS and restored["lines"] == original["lines"]


# --- every way out -----------------------------------------------------------------------------------
@pytest.fixture
def leaky(db):
    run = FlowRunFactory(status="failed", flow_type="invoice_posting", document_number="INV-77", context={"event": {"data": {**BODY, "headers": HEADERS}}})
    FlowStepFactory(flow_run=run, seq=1, name="billing_fetch", system="stripe", status="succeeded", request_summary={"headers": HEADERS}, response_summary=BODY)
    step = FlowStepFactory(
        flow_run=run,
        seq=2,
        name="erp_invoice",
        status="failed",
        error_message=MESSAGE,
        request_summary={"headers": HEADERS, "body": BODY},
        response_summary={"body": BODY},
    )
    exc = SyncExceptionFactory(
        step=step, flow_run=run, message=MESSAGE, payload={"headers": HEADERS, "body": BODY}, response={"status_code": 401, "body": BODY}
    )
    AuditEntry.objects.create(
        actor_label="system",
        object_type="flow",
        object_id=str(run.pk),
        action="note",
        correlation_id=run.correlation_id,
        before={"body": BODY},
        after={"headers": HEADERS},
        note=MESSAGE,
    )
    return exc


def test_the_trace_page_shows_no_secret(client, itops, leaky):
    client.force_login(itops)
    html = client.get(f"/traces/{leaky.flow_run_id}/").content.decode()
    assert "Hooli Inc." in html and "erp_invoice" in html and MASK in html
    assert_no_secret(html, "trace page")


def test_the_flows_api_shows_no_secret(client, itops, leaky):
    client.force_login(itops)
    detail = client.get(f"/api/v1/flows/{leaky.flow_run_id}/")
    assert detail.status_code == 200 and detail.json()["steps"][1]["request_summary"]["headers"]["Authorization"] == MASK
    assert_no_secret(detail.content.decode(), "flows API detail")
    assert_no_secret(client.get("/api/v1/flows/").content.decode(), "flows API list")


@pytest.mark.parametrize("role", ["executive", "finance", "revops", "itops"])
def test_exception_detail_shows_no_secret_to_any_role(client, request, role, leaky):
    client.force_login(request.getfixturevalue(role))
    page = client.get(f"/exceptions/{leaky.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Hooli Inc." in html and MASK in html
    assert_no_secret(html, f"exception page for {role}")
    api = client.get(f"/api/v1/exceptions/{leaky.pk}/")
    assert api.status_code == 200 and api.json()["payload"]["headers"]["Authorization"] == MASK
    assert_no_secret(api.content.decode(), f"exception API for {role}")
    assert_no_secret(client.get("/api/v1/exceptions/").content.decode(), f"exception list API for {role}")
    assert_no_secret(client.get("/exceptions/").content.decode(), f"exception queue for {role}")


def test_the_csv_export_shows_no_secret(client, finance, leaky):
    client.force_login(finance)
    response = client.get("/exceptions/export.csv")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    assert "INV-77" in text and MASK in text
    assert_no_secret(text, "CSV export")


def test_log_lines_show_no_secret(caplog, capsys):
    """The filter settings.LOGGING puts on the console handler: message, arguments, extra fields, traceback."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, RedactingFilter) for f in h.filters))
    log = logging.getLogger("tests.redaction")
    record_lines = []

    class Capture(logging.Handler):
        def emit(self, record):
            record_lines.append(handler.format(record))

    capture = Capture()
    capture.filters = handler.filters
    log.addHandler(capture)
    try:
        log.warning("stripe answered: %s", MESSAGE, extra={"body": BODY, "api_key": "k-apikey-777"})
        try:
            raise RuntimeError(f"call failed with headers {HEADERS}")
        except RuntimeError:
            log.exception("connector crashed for %s", SECRETS["card (plain)"])
    finally:
        log.removeHandler(capture)
    text = "\n".join(json.dumps(json.loads(line), ensure_ascii=False) for line in record_lines)  # one JSON object a line
    assert "stripe answered" in text and "RuntimeError" in text and MASK in text
    assert_no_secret(text, "log lines")
    line = json.loads(record_lines[0])
    assert line["api_key"] == MASK and line["body"]["customer"] == "Hooli Inc."


def test_alerts_show_no_secret(db, monkeypatch):
    from monitoring.alerts import services, transports
    from monitoring.models import AlertChannel, SentAlert

    sent = []
    monkeypatch.setitem(transports.TRANSPORTS, "webhook", lambda channel, alert: sent.append(alert))
    AlertChannel.objects.create(name="ops", kind="webhook", target="http://127.0.0.1:9/hook", events=[])
    services.alert_send(event="exception_spike", dedupe_key="k", subject=f"spike: {MESSAGE}", body=MESSAGE, path="/exceptions/", payload={"body": BODY})
    stored = SentAlert.objects.get()
    assert sent and MASK in stored.body
    assert_no_secret(" ".join([stored.subject, stored.body, json.dumps(stored.payload)]), "alert")
