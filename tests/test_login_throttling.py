"""Login throttling (django-axes): wrong passwords lock a username + address pair for a while,
on the portal login and the admin login; the page says so; cool-off and IT's reset unlock it."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import call_command

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client, url, username, password, ip="203.0.113.7"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_thirty_wrong_passwords_then_the_right_one_is_refused(client, make_user, url):
    make_user("oscar", "IT Operations", is_staff=True, is_superuser=True)
    answers = [sign_in(client, url, "oscar", f"wrong-{i}").status_code for i in range(30)]
    assert answers[:4] == [200] * 4  # the form again, "do not match"
    assert set(answers[5:]) == {429}  # locked from the limit on
    right = sign_in(client, url, "oscar", PASSWORD)
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    html = right.content.decode()
    assert "Too many failed sign-ins" in html and "15 minutes" in html and "ask IT Operations to unlock" in html
    assert int(right["Retry-After"]) == 15 * 60
    # the same user from another address is not locked (a stranger cannot lock someone out everywhere)
    assert sign_in(client, url, "oscar", PASSWORD, ip="198.51.100.9").status_code == 302


def test_after_the_cool_off_the_right_password_works(client, make_user, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    make_user("oscar", "IT Operations")
    for i in range(6):
        sign_in(client, "/login/", "oscar", f"wrong-{i}")
    assert sign_in(client, "/login/", "oscar", PASSWORD).status_code == 429
    time.sleep(1.2)
    assert sign_in(client, "/login/", "oscar", PASSWORD).status_code == 302
    assert client.session["_auth_user_id"]


def test_it_unlocks_a_user_with_the_axes_command(client, make_user):
    make_user("fiona", "Finance")
    for i in range(6):
        sign_in(client, "/login/", "fiona", f"wrong-{i}")
    assert sign_in(client, "/login/", "fiona", PASSWORD).status_code == 429
    call_command("axes_reset_username", "fiona")
    assert sign_in(client, "/login/", "fiona", PASSWORD).status_code == 302
