"""The production settings pass Django's deployment checklist, and refuse the simulators' secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# real-looking credentials for every configured connector (none of them the simulators' values)
REAL_LOOKING = {
    "SALESFORCE_CLIENT_ID": "3MVG9prod.connected.app.consumer.key",
    "SALESFORCE_CLIENT_SECRET": "F1E2D3C4B5A6prodclientsecret",
    "SALESFORCE_WEBHOOK_SECRET": "9c1f0e6b2a7d4c8e1f3a5b7c9d0e2f4a",
    "NETSUITE_ACCOUNT_ID": "7654321",
    "NETSUITE_CONSUMER_KEY": "ck-5f2e9a1c7b3d",
    "NETSUITE_CONSUMER_SECRET": "cs-8d4b2f6a0c1e",
    "NETSUITE_TOKEN_ID": "ti-1a2b3c4d5e6f",
    "NETSUITE_TOKEN_SECRET": "ts-6f5e4d3c2b1a",
    "STRIPE_API_KEY": "rk_live_51Prod000RestrictedKey",
    "STRIPE_WEBHOOK_SECRET": "whsec_prodSigningSecret0123456789",
}
CREDENTIAL_VARIABLES = [*REAL_LOOKING, "SALESFORCE_PRIVATE_KEY_FILE", "Q2C_SIMULATORS"]


def production_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", *CREDENTIAL_VARIABLES}}
    env.update(
        {"SECRET_KEY": "x" * 64 + "-prod-like-secret-key-for-the-check", "ALLOWED_HOSTS": "q2c.example.com", "DJANGO_SETTINGS_MODULE": "q2c_portal.settings"}
    )
    env.update(extra)
    return env


def manage(*args, env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_manage_py_check_deploy_is_clean_under_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(**REAL_LOOKING))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env["DJANGO_SETTINGS_MODULE"] = "q2c_portal.settings"
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_check_deploy_fails_on_every_simulator_secret_and_names_the_variable():
    result = manage("check", "--deploy", env=production_env())
    assert result.returncode != 0
    for variable in REAL_LOOKING:
        assert variable in result.stderr, variable
    assert "public simulator value" in result.stderr
    assert result.stderr.count("STRIPE_WEBHOOK_SECRET holds") == 1  # reported once, not by two checks


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [("STRIPE_WEBHOOK_SECRET", "whsec_sandbox_secret", "holds the public simulator value"), ("NETSUITE_TOKEN_SECRET", "", "is not set")],
)
def test_one_simulator_or_missing_credential_is_enough_to_fail(variable, value, says):
    result = manage("check", "--deploy", env=production_env(**{**REAL_LOOKING, variable: value}))
    assert result.returncode != 0 and f"{variable} {says}" in result.stderr
    others = [v for v in REAL_LOOKING if v != variable]
    assert not any(v in result.stderr for v in others), result.stderr


def test_a_missing_salesforce_key_file_is_named():
    result = manage("check", "--deploy", env=production_env(**REAL_LOOKING, SALESFORCE_PRIVATE_KEY_FILE="/nonexistent/sf.key"))
    assert result.returncode != 0 and "/nonexistent/sf.key" in result.stderr


def test_production_commands_and_the_web_process_refuse_simulator_secrets_but_the_demo_may_use_them():
    # with DEBUG off every command runs the check (not only --deploy) …
    refused = manage("check", env=production_env())
    assert refused.returncode != 0 and "STRIPE_API_KEY holds the public simulator value" in refused.stderr
    # … and the WSGI application does not load
    wsgi = subprocess.run([sys.executable, "-c", "import q2c_portal.wsgi"], cwd=ROOT, env=production_env(), capture_output=True, text=True)
    assert wsgi.returncode != 0 and "Refusing to start" in wsgi.stderr and "STRIPE_WEBHOOK_SECRET" in wsgi.stderr
    # bin/run-demo says the simulators are meant (Q2C_SIMULATORS=1): it starts
    demo = production_env(Q2C_SIMULATORS="1")
    assert manage("check", env=demo).returncode == 0
    assert subprocess.run([sys.executable, "-c", "import q2c_portal.wsgi"], cwd=ROOT, env=demo, capture_output=True, text=True).returncode == 0
    assert (
        subprocess.run(
            [sys.executable, "-c", "import q2c_portal.wsgi"], cwd=ROOT, env=production_env(**REAL_LOOKING), capture_output=True, text=True
        ).returncode
        == 0
    )


BC_REAL_LOOKING = {
    "BUSINESS_CENTRAL_TENANT_ID": "8c3f1e52-6b7a-4d0e-9f21-3a5b7c9d1e2f",
    "BUSINESS_CENTRAL_COMPANY_ID": "0f4e2d6c-8a1b-4c3d-9e5f-7a6b8c9d0e1f",
    "BUSINESS_CENTRAL_CLIENT_ID": "3d9a7f1e-2b4c-4e6d-8f0a-1b3c5d7e9f2a",
    "BUSINESS_CENTRAL_CLIENT_SECRET": "Qx8~prodEntraClientSecretValue",
    "BUSINESS_CENTRAL_WEBHOOK_CLIENT_STATE": "b1e4c7a0d3f6prodClientState9a2c5e8",
}


def test_business_central_as_the_erp_needs_its_own_credentials():
    """Only a connector that plays a role is checked: with Q2C_ERP=business_central, BC's sandbox values
    are refused (and NetSuite's no longer matter)."""
    not_netsuite = {k: v for k, v in REAL_LOOKING.items() if not k.startswith("NETSUITE_")}
    refused = manage("check", "--deploy", env=production_env(**not_netsuite, Q2C_ERP="business_central"))
    accepted = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(**not_netsuite, **BC_REAL_LOOKING, Q2C_ERP="business_central"))

    assert refused.returncode != 0
    for variable in BC_REAL_LOOKING:
        assert variable in refused.stderr, variable
    assert "NETSUITE_" not in refused.stderr
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
