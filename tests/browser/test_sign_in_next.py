"""Signing in from the console's redirect comes back to the console page asked for, and in
``invite`` registration mode sign-up shows only with an invitation link, which then works."""

from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import PASSWORD
from tests.browser.server import REPO, VENV_BIN, LiveServer

pytestmark = pytest.mark.browser

ADMIN = "root@example.com"


@pytest.fixture(scope="module")
def server():
    with LiveServer(REGISTRATION="invite") as live:
        subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "create-admin", ADMIN, "--password", PASSWORD],
                       cwd=REPO, env=live.env, check=True, capture_output=True)
        yield live


def sign_in_from(page, path: str) -> None:
    page.goto(path)
    assert urlsplit(page.url).path == "/login"
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == path)


def test_sign_in_comes_back_to_the_console_page(page):
    sign_in_from(page, "/admin/users/")
    page.get_by_text(ADMIN).first.wait_for()


def test_a_foreign_next_lands_on_the_chat(page, server):
    page.goto("/login?next=//example.com/")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Message", exact=True).wait_for()
    assert page.url.startswith(server.url)


def test_an_invitation_link_signs_up_in_invite_mode(page, browser, server):
    sign_in_from(page, "/admin/users/invite/")
    page.get_by_role("button", name="Make invitation link").click()
    link = page.locator("#invite-link").inner_text()
    invited = browser.new_context(base_url=server.url)
    try:
        visitor = invited.new_page()
        visitor.goto("/signup")  # no invitation: no sign-up form
        visitor.get_by_text("Sign-up needs an invitation").wait_for()
        assert urlsplit(visitor.url).path == "/login"
        visitor.goto(urlsplit(link).path + "?" + urlsplit(link).query)
        visitor.get_by_role("heading", name="Create your account").wait_for()
        visitor.get_by_label("Email").fill("invited@example.com")
        visitor.get_by_label("Password").fill(PASSWORD)
        visitor.get_by_role("button", name="Create account").click()
        visitor.get_by_label("Message", exact=True).wait_for()
    finally:
        invited.close()
