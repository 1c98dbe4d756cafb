"""A sign-in rate limit is explained in plain words (its own server: a low limit)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import sign_up
from tests.browser.server import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    # (this browser signed in before: only its own failures count, RATELIMIT_LOGIN_PER_DEVICE)
    with LiveServer(RATELIMIT_LOGIN_PER_ACCOUNT="2/300", RATELIMIT_LOGIN_PER_DEVICE="1/300") as live:
        yield live


def test_rate_limited_sign_in(page):
    email = sign_up(page)  # one sign-in counted
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="Wrong email or password.").wait_for()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="Too many attempts. Try again in").wait_for()
