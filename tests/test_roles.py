"""Roles: each sees the pages it may, is refused the rest, and only some may act."""

import pytest

ALL_PAGES = ["/", "/orders/", "/amendments/", "/invoices/", "/exceptions/", "/sla/", "/reconciliation/", "/traces/", "/connectors/"]
ALLOWED = {
    "Executive": {"/", "/orders/", "/amendments/", "/invoices/", "/exceptions/", "/sla/", "/reconciliation/"},
    "Finance": {"/", "/orders/", "/amendments/", "/invoices/", "/exceptions/", "/sla/", "/reconciliation/", "/traces/"},
    "RevOps": {"/", "/orders/", "/amendments/", "/invoices/", "/exceptions/", "/sla/", "/traces/"},
    "IT Operations": set(ALL_PAGES),
}


@pytest.mark.django_db
@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_requires_login(client, page):
    response = client.get(page)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(ALLOWED))
def test_each_role_sees_its_pages_and_is_refused_the_others(client, make_user, role):
    client.force_login(make_user("someone", role))
    for page in ALL_PAGES:
        status = client.get(page).status_code
        expected = 200 if page in ALLOWED[role] else 403
        assert status == expected, f"{role} {page}: {status}"


@pytest.mark.django_db
def test_a_user_without_a_role_sees_nothing(client, make_user):
    client.force_login(make_user("nobody"))
    assert client.get("/").status_code == 403


@pytest.mark.django_db
def test_navigation_shows_only_permitted_pages(client, executive):
    client.force_login(executive)
    html = client.get("/").content.decode()
    assert 'href="/orders/"' in html
    assert 'href="/connectors/"' not in html
    assert 'href="/traces/"' not in html


@pytest.mark.django_db
def test_an_executive_posting_an_action_gets_403_and_changes_nothing(client, executive, open_exception):
    client.force_login(executive)
    response = client.post(f"/exceptions/{open_exception.pk}/resolve/", {"note": "looks fine"})
    assert response.status_code == 403
    open_exception.refresh_from_db()
    assert open_exception.status == "open"


@pytest.mark.django_db
def test_an_executive_sees_no_action_buttons(client, executive, open_exception):
    client.force_login(executive)
    html = client.get("/exceptions/").content.decode()
    assert open_exception.document_number in html
    assert "Retry</button>" not in html
    detail = client.get(f"/exceptions/{open_exception.pk}/").content.decode()
    assert "cannot act" in detail.lower() or "but not act" in detail


@pytest.mark.django_db
def test_it_operations_can_resolve_with_a_note_and_it_is_audited(client, itops, open_exception):
    from sync.models import AuditEntry

    client.force_login(itops)
    response = client.post(f"/exceptions/{open_exception.pk}/resolve/", {"note": "fixed the SKU in NetSuite"})
    assert response.status_code == 302
    open_exception.refresh_from_db()
    assert open_exception.status == "resolved"
    entry = AuditEntry.objects.get(object_type="exception", object_id=str(open_exception.pk), action="resolve")
    assert entry.actor == itops and entry.note == "fixed the SKU in NetSuite"


@pytest.mark.django_db
def test_resolving_without_a_note_is_refused_with_a_readable_message(client, itops, open_exception):
    client.force_login(itops)
    response = client.post(f"/exceptions/{open_exception.pk}/resolve/", {"note": "  "}, follow=True)
    assert "Say how it was resolved" in response.content.decode()
    open_exception.refresh_from_db()
    assert open_exception.status == "open"
