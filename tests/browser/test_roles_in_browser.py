"""Each role logs in through the real form in headless Chromium and sees its pages."""

import pytest

from tests.test_roles import ALL_PAGES, ALLOWED

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("role", list(ALLOWED))
def test_each_role_sees_its_pages_and_is_refused_the_others(make_user, login, live_server, role):
    page = login(make_user("someone", role))
    nav = [a.get_attribute("href") for a in page.locator("#mainnav a").all()]
    assert [n for n in nav if n] == [p for p in ALL_PAGES if p in ALLOWED[role]]
    for path in ALL_PAGES:
        response = page.goto(f"{live_server.url}{path}")
        if path in ALLOWED[role]:
            assert response.status == 200, path
            assert page.locator("h1").first.is_visible()
        else:
            assert response.status == 403, path
            assert "don't have access" in page.locator("h1").inner_text()


def test_a_wrong_password_shows_a_readable_message(page, live_server, make_user):
    make_user("erin", "Executive")
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "erin")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert "do not match" in page.locator("[role=alert]").inner_text()


def test_pages_load_htmx_and_plotly_from_our_own_server(login, make_user, live_server):
    page = login(make_user("oscar", "IT Operations"))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{live_server.url}/orders/")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("typeof htmx") == "object"
    assert page.evaluate("typeof Plotly") == "object"
    assert all(url.startswith(live_server.url) for url in requests), requests
