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
