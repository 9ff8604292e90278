from django.db import migrations

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION sync_auditentry_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER sync_auditentry_no_update BEFORE UPDATE OR DELETE ON sync_auditentry
  FOR EACH ROW EXECUTE FUNCTION sync_auditentry_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS sync_auditentry_no_update ON sync_auditentry;
DROP FUNCTION IF EXISTS sync_auditentry_append_only();
"""

# The design's default system-of-record matrix (editable in admin afterwards).
DEFAULT_OWNERSHIP = [
    ("customer_legal", "Customer legal name, tax id, payment terms", ["name", "tax_id", "payment_terms", "legal_entity"], "erp"),
    ("customer_commercial", "Account owner and segment", ["account_owner", "segment"], "crm"),
    ("contract_terms", "Contract terms and quantities", ["start_date", "end_date", "term_months", "quantity", "unit_price"], "crm"),
    ("subscription_state", "Subscription state and invoices", ["status", "current_period_end", "invoice_status"], "billing"),
    ("financials", "GL postings and revenue schedules", ["gl_account", "revenue_schedule", "posting_period"], "erp"),
]


def add_ownership(apps, schema_editor):
    OwnershipRule = apps.get_model("sync", "OwnershipRule")
    for group, description, fields, owner in DEFAULT_OWNERSHIP:
        OwnershipRule.objects.get_or_create(field_group=group, defaults={"description": description, "fields": fields, "owner_role": owner})


class Migration(migrations.Migration):
    dependencies = [("sync", "0001_initial")]

    operations = [
        migrations.RunSQL(APPEND_ONLY, DROP),
        migrations.RunPython(add_ownership, migrations.RunPython.noop),
    ]
