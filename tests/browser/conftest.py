"""Fixtures for the browser tests: one live server per module, one Chromium per session, and a
fresh browser context per test that records dialogs and refuses (and records) any request
leaving the machine."""

from __future__ import annotations

import itertools
import os
from urllib.parse import urlsplit

import pytest

from tests.browser.server import LiveServer

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("BESTCHAT_CHROMIUM", "/usr/bin/chromium")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
_emails = itertools.count(1)


@pytest.fixture(scope="module")
def server():
    with LiveServer() as live:
        yield live


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):  # CI installs it (.ci/run): a missing browser is a failure there
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            browser.close()


class Watch:
    """What a context did that a test may forbid: JavaScript dialogs and outside requests."""

    def __init__(self):
        self.dialogs: list[str] = []
        self.outside: list[str] = []


@pytest.fixture
def watch():
    return Watch()


@pytest.fixture
def context(browser, server, watch):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15000)

    def route(route):
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            watch.outside.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    context.on("page", lambda page: _watch_page(page, watch))
    try:
        yield context
    finally:
        context.close()


def _watch_page(page, watch: Watch) -> None:
    def on_dialog(dialog):
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)


@pytest.fixture
def page(context):
    return context.new_page()


def new_email() -> str:
    return f"user{next(_emails)}-{os.getpid()}@example.com"


PASSWORD = "correct horse battery"


def sign_up(page, email: str | None = None, password: str = PASSWORD) -> str:
    """Create an account through the sign-up form; ends on the chat page."""
    email = email or new_email()
    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    page.get_by_label("Message", exact=True).wait_for()
    return email


@pytest.fixture
def signed_in(page):
    """A page signed in as a fresh user, on the chat page; returns the email."""
    return sign_up(page)
