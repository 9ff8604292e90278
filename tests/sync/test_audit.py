"""The audit trail is append-only, enforced by PostgreSQL itself."""

import pytest
from django.db import DatabaseError, transaction

from sync.audit import audit_record


@pytest.mark.django_db
def test_audit_rows_cannot_be_changed_or_deleted():
    entry = audit_record(object_type="flow", object_id=1, action="start", after={"status": "running"})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        type(entry).objects.filter(pk=entry.pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        type(entry).objects.filter(pk=entry.pk).delete()
    entry.refresh_from_db()
    assert entry.action == "start"


@pytest.mark.django_db
def test_truncate_of_the_audit_trail_is_refused_unless_a_test_session_allows_it():
    from django.db import connection

    audit_record(object_type="flow", object_id=1, action="start")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL q2c.allow_audit_truncate = off")
        cursor.execute("TRUNCATE sync_auditentry")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL q2c.allow_audit_truncate = off")
        cursor.execute("TRUNCATE sync_auditentry, sync_inboxevent CASCADE")  # as Django's flush does
    from sync.models import AuditEntry

    assert AuditEntry.objects.count() == 1
    with transaction.atomic(), connection.cursor() as cursor:  # the test session's own setting (tests/settings.py)
        cursor.execute("SHOW q2c.allow_audit_truncate")
        assert cursor.fetchone()[0] == "on"
        cursor.execute("TRUNCATE sync_auditentry")
    assert AuditEntry.objects.count() == 0


@pytest.mark.django_db
def test_the_escape_hatch_works_on_test_databases_only():
    """Outside a test_* database the setting does nothing: the trigger reads the database name."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'sync_auditentry_no_truncate'")
        source = cursor.fetchone()[0]
        cursor.execute("SELECT current_database() LIKE 'test\\_%'")
        assert cursor.fetchone()[0] is True
    assert "current_database() LIKE 'test\\_%'" in source


def test_nobody_adds_changes_or_deletes_audit_entries_in_the_admin(admin_client):
    entry = audit_record(object_type="flow", object_id=1, action="start")
    assert admin_client.get("/admin/sync/auditentry/").status_code == 200
    assert b"/admin/sync/auditentry/add/" not in admin_client.get("/admin/sync/auditentry/").content
    assert admin_client.get("/admin/sync/auditentry/add/").status_code == 403
    forged = admin_client.post("/admin/sync/auditentry/add/", {"object_type": "flow", "object_id": "9", "action": "approved", "actor_label": "ceo"})
    assert forged.status_code == 403
    assert admin_client.post(f"/admin/sync/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    from sync.models import AuditEntry

    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["start"]
