"""The four roles as Django groups, and what each may see and do.

The matrix below is the single source: pages check these permissions on the server,
and templates only hide what the server would refuse anyway.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, router

from .models import DEFAULT_SLA_MINUTES, SlaPolicy

EXECUTIVE, FINANCE, REVOPS, IT_OPS = "Executive", "Finance", "RevOps", "IT Operations"

ACT = "sync.act_on_exception"
# merging, unmerging, keeping customers apart changes the legal customer record (name, tax id,
# terms: owned by the ERP, i.e. Finance) and which documents belong to whom: data stewards only.
# As in MDM tools the steward role is separate from "may work the queue": Finance (owns customer
# master data) and IT Operations (runs the hub) decide; RevOps sees the review and may comment
# or assign it; Executives only read.
DECIDE_CUSTOMER_MATCH = "sync.decide_customer_match"
# the reconciliation rules decide what counts as the books agreeing: Finance (owns the books) and
# IT Operations (runs the hub) change them; anyone who may work the queue may start a run
RECON_RULES = "sync.manage_reconciliation_rules"
ROLE_PERMISSIONS: dict[str, list[str]] = {
    EXECUTIVE: ["monitoring.view_kpis", "monitoring.view_exceptions", "monitoring.view_reconciliation"],
    FINANCE: [
        "monitoring.view_kpis",
        "monitoring.view_exceptions",
        "monitoring.view_reconciliation",
        "monitoring.view_traces",
        "monitoring.approve_financial_edits",
        ACT,
        DECIDE_CUSTOMER_MATCH,
        RECON_RULES,
    ],
    REVOPS: [
        "monitoring.view_kpis",
        "monitoring.view_exceptions",
        "monitoring.view_traces",
        "monitoring.manage_sla",
        ACT,
    ],
    IT_OPS: [
        "monitoring.view_kpis",
        "monitoring.view_exceptions",
        "monitoring.view_reconciliation",
        "monitoring.view_traces",
        "monitoring.view_connectors",
        "monitoring.manage_connectors",
        "monitoring.manage_sla",
        ACT,
        DECIDE_CUSTOMER_MATCH,
        RECON_RULES,
    ],
}


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def ensure_roles(using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """Create/update the role groups and the default SLA policies (runs after migrate, and after
    every test flush). Permissions exist by now: auth's own post_migrate handler runs first."""
    if not router.allow_migrate_model(using, Group):
        return  # a database without the auth tables, e.g. `migrate --database sandboxes`
    for name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set([_permission(p) for p in perms])
    for flow_type, minutes in DEFAULT_SLA_MINUTES.items():
        SlaPolicy.objects.get_or_create(flow_type=flow_type, defaults={"target_seconds": minutes * 60})
