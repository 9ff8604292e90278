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
@pytest.mark.parametrize("role", list(ALLOWED))
def test_no_page_offers_a_role_a_link_it_cannot_open(client, make_user, role):
    """Crawl each permitted page of the role (demo data) and open every in-app link on it,
    one of each shape: none may answer 403 (a link to a refusal), 404 or 5xx."""
    import os
    import re
    from urllib.parse import urljoin, urlparse

    from django.core.management import call_command

    call_command("seed_kpi_demo", days=7, scale=0.2, seed=5, stdout=open(os.devnull, "w"))
    client.force_login(make_user("crawler", role))
    shapes: dict[str, tuple[str, str]] = {}
    for page in sorted(ALLOWED[role]):
        html = client.get(page).content.decode()
        for href in re.findall(r'href="([^"#]+)"', html):
            url = urlparse(urljoin(page, href.replace("&amp;", "&")))
            if url.netloc or not url.path.startswith("/") or url.path.startswith(("/static/", "/admin/", "/api/v1/docs", "/logout")):
                continue
            shape = re.sub(r"\d+", "N", url.path) + "?" + ",".join(sorted(k.split("=")[0] for k in url.query.split("&") if k))
            shapes.setdefault(shape, (url.path + ("?" + url.query if url.query else ""), page))
    broken = [(link, on, client.get(link).status_code) for link, on in shapes.values()]
    broken = [b for b in broken if b[2] in (403, 404) or b[2] >= 500]
    assert len(shapes) > 20 and broken == [], broken


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
