"""Production refuses to start on the simulators' public secrets or without a connector's credentials.

settings.CONNECTORS falls back to the vendor simulators' values (sandboxes/, public in this repo)
when a variable is unset, so a laptop runs with no setup. In production that would mean signing
webhooks with a secret anyone can read, or a connector that fails at its first call. This check
names each variable that still holds a simulator value, or is empty, for every connector that
plays a role (settings.CONNECTOR_ROLES):

- `manage.py check --deploy` always runs it;
- with DEBUG off every command runs it (migrate, check …) and so does the WSGI start
  (q2c_portal/wsgi.py), unless Q2C_SIMULATORS=1 says the connectors talk to the simulators on
  purpose (bin/run-demo sets it).

Only settings are read: q2c_portal imports no app."""

from __future__ import annotations

import os

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

# the simulator values settings.py falls back to (sandboxes/ answer to exactly these)
SIMULATOR_VALUES = {
    "sandbox-client-id",
    "sandbox-client-secret",
    "sandbox-salesforce-relay-secret",
    "1234567_SB1",
    "sandbox-consumer-key",
    "sandbox-consumer-secret",
    "sandbox-token-id",
    "sandbox-token-secret",
    "sk_test_sandbox",
    "whsec_sandbox_secret",
    "sandbox-tenant",
    "5b2a1c9e-7d3f-4e8a-9c61-0b4d2f7a8e13",  # the Business Central sandbox's company
    "sandbox-bc-client-id",
    "sandbox-bc-client-secret",
    "sandbox-bc-client-state",
}
# per connector: (setting key(s), environment variable(s)); a tuple of keys means "one of them"
REQUIRED = {
    "salesforce": [
        ("client_id", "SALESFORCE_CLIENT_ID"),
        ("webhook_secret", "SALESFORCE_WEBHOOK_SECRET"),
        (("private_key_file", "client_secret"), "SALESFORCE_PRIVATE_KEY_FILE or SALESFORCE_CLIENT_SECRET"),
    ],
    "netsuite": [
        ("account_id", "NETSUITE_ACCOUNT_ID"),
        ("consumer_key", "NETSUITE_CONSUMER_KEY"),
        ("consumer_secret", "NETSUITE_CONSUMER_SECRET"),
        ("token_id", "NETSUITE_TOKEN_ID"),
        ("token_secret", "NETSUITE_TOKEN_SECRET"),
    ],
    "business_central": [
        ("tenant_id", "BUSINESS_CENTRAL_TENANT_ID"),
        ("company_id", "BUSINESS_CENTRAL_COMPANY_ID"),
        ("client_id", "BUSINESS_CENTRAL_CLIENT_ID"),
        ("client_secret", "BUSINESS_CENTRAL_CLIENT_SECRET"),
        ("webhook_client_state", "BUSINESS_CENTRAL_WEBHOOK_CLIENT_STATE"),
    ],
    "stripe": [
        ("api_key", "STRIPE_API_KEY"),
        ("webhook_secret", "STRIPE_WEBHOOK_SECRET"),
    ],
}


def simulators_allowed() -> bool:
    return os.environ.get("Q2C_SIMULATORS", "").strip().lower() in {"1", "true", "yes", "on"}


def connector_credential_errors() -> list[checks.Error]:
    errors = []
    connectors = getattr(settings, "CONNECTORS", {})
    for system in sorted(set(getattr(settings, "CONNECTOR_ROLES", {}).values())):
        config = connectors.get(system, {})
        for keys, variable in REQUIRED.get(system, []):
            keys = keys if isinstance(keys, tuple) else (keys,)
            values = [str(config.get(k) or "").strip() for k in keys]
            if any(v in SIMULATOR_VALUES for v in values):
                errors.append(
                    checks.Error(
                        f"{variable} holds the public simulator value.",
                        hint=f"Set {variable} to the {system} credential (the simulators' secrets are in this repository).",
                        id="q2c.E001",
                    )
                )
            elif not any(values):
                errors.append(
                    checks.Error(f"{variable} is not set.", hint=f"{system} is a configured connector (CONNECTOR_ROLES); set {variable}.", id="q2c.E002")
                )
        key_file = config.get("private_key_file") if system == "salesforce" else ""
        if key_file and not os.path.isfile(key_file):
            errors.append(checks.Error(f"SALESFORCE_PRIVATE_KEY_FILE names {key_file}, which does not exist.", id="q2c.E003"))
    return errors


def _enforced() -> bool:
    return not settings.DEBUG and not simulators_allowed()


@checks.register(checks.Tags.security)
def connector_credentials(app_configs=None, **kwargs):
    """Every command (migrate, check, runserver …) with DEBUG off, unless Q2C_SIMULATORS=1 (the demo)."""
    return connector_credential_errors() if _enforced() else []


@checks.register(checks.Tags.security, deploy=True)
def connector_credentials_deploy(app_configs=None, **kwargs):
    """`check --deploy` reports them even for DEBUG or the demo (once: the check above has not)."""
    return [] if _enforced() else connector_credential_errors()


def refuse_to_start() -> None:
    """For process entry points (WSGI): raise with every finding when production would start on
    simulator secrets or without a credential."""
    if not _enforced():
        return
    errors = connector_credential_errors()
    if errors:
        raise ImproperlyConfigured("Refusing to start: " + " ".join(e.msg for e in errors))
