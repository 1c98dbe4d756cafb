"""The shell and the non-chat pages: security headers, accounts, settings (provider keys,
API tokens, theme, account deletion), usage, and the narrow-screen layout."""

from __future__ import annotations

import re
import sqlite3
import urllib.request
from urllib.parse import urlsplit
from pathlib import Path

import pytest

from tests.browser.conftest import PASSWORD, new_email, sign_up

pytestmark = pytest.mark.browser

SECRET_KEY = "sk-test-TOPSECRET-0123456789wxyz"


def test_html_pages_carry_a_strict_csp(server):
    for path in ("/", "/login", "/settings", "/usage", "/plan"):
        with urllib.request.urlopen(server.url + path) as response:
            csp = response.headers["Content-Security-Policy"]
            html = response.read().decode()
        for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'",
                          "base-uri 'none'", "frame-ancestors 'none'", "img-src 'self' data:",
                          "connect-src 'self'"):
            assert directive in csp, (path, directive)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        # No inline script and no inline event handler anywhere in the shell.
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert not re.search(r"\son[a-z]+\s*=", html)


def test_pages_load_only_from_this_machine(page, watch):
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    sign_up(page)
    for path in ("/settings", "/usage", "/plan", "/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    assert watch.outside == []
    assert requests and all(urlsplit(url).hostname == "127.0.0.1" for url in requests), requests


def test_sign_in_errors_and_sign_out(page, server):
    email = sign_up(page)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile("/login$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="Wrong email or password.").wait_for()

    _disable(server, email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="This account is disabled").wait_for()


def _disable(server, email: str) -> None:
    database = Path(server.env["BESTCHAT_INSTANCE_PATH"]) / "bestchat.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE users SET disabled = 1 WHERE email = ?", (email,))


def test_visitor_is_sent_to_sign_in(page):
    page.goto("/settings")
    page.wait_for_url(re.compile("/login$"))
    page.get_by_role("link", name="Create an account").click()
    page.get_by_role("heading", name="Create your account").wait_for()


def test_provider_key_is_write_only(page, signed_in):
    bodies = []

    def keep(response):
        if "/api/" in response.url:
            try:
                bodies.append(response.text())
            except Exception:  # noqa: BLE001 - redirects and aborted responses have no body
                pass

    page.on("response", keep)
    page.goto("/settings")
    form = page.get_by_role("form", name="Add a provider key")
    form.get_by_label("Provider").select_option("openai")
    form.get_by_label("Name").fill("Mine")
    form.get_by_label("API key").fill(SECRET_KEY)
    form.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    form.get_by_role("button", name="Add key").click()
    item = page.locator(".item", has_text="Mine (openai)")
    item.get_by_text("key ••••wxyz").wait_for()
    assert form.get_by_label("API key").input_value() == ""

    item.get_by_role("button", name="Test Mine (openai)").click()
    result = item.get_by_role("status")
    result.filter(has_not_text="Testing").filter(has_text=re.compile(".")).wait_for(timeout=30000)
    assert "wxyz" not in result.inner_text()

    page.reload()
    page.locator(".item", has_text="Mine (openai)").wait_for()
    export = page.request.get("/api/v1/me/export").text()
    providers = page.request.get("/api/v1/providers").text()
    for text in [page.content(), export, providers, *bodies]:
        assert SECRET_KEY not in text
        assert "TOPSECRET" not in text

    page.locator(".item", has_text="Mine (openai)").get_by_role("button", name="Delete Mine (openai)").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_text("No keys saved yet.").wait_for()


def test_api_token_shown_once_then_revoked(page, signed_in):
    page.goto("/settings")
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator(".created-token .secret").inner_text()
    assert secret.startswith("bc_")
    assert page.get_by_role("button", name="Copy token").is_visible()
    me = page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.ok
    page.reload()
    page.locator(".item", has_text="laptop").wait_for()
    assert secret not in page.content()
    page.get_by_role("button", name="Revoke laptop").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    page.get_by_text("No tokens yet.").wait_for()
    assert page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status == 401


def test_theme_follows_system_then_choice(browser, server):
    context = browser.new_context(base_url=server.url, color_scheme="dark")
    try:
        page = context.new_page()
        sign_up(page)
        background = "getComputedStyle(document.body).backgroundColor"
        dark = page.evaluate(background)
        page.goto("/settings")
        page.get_by_label("Light").check()
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        assert page.evaluate(background) != dark
        page.get_by_label("Follow the system").check()
        assert page.evaluate(background) == dark
    finally:
        context.close()


def test_delete_account(page, signed_in):
    page.goto("/settings")
    delete = page.get_by_role("button", name="Delete my account")
    assert delete.is_disabled()
    page.get_by_label("to confirm").fill("delete my account")
    page.get_by_role("form", name="Delete my account").get_by_label("Password").fill("wrong password!")
    delete.click()
    page.get_by_text("That password is wrong.").wait_for()
    page.get_by_role("form", name="Delete my account").get_by_label("Password").fill(PASSWORD)
    delete.click()
    page.wait_for_url(re.compile("/login$"))
    page.get_by_label("Email").fill(signed_in)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong email or password.").wait_for()


def test_narrow_screen_and_keyboard(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        sign_up(page, new_email())
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        box = page.get_by_label("Message", exact=True)
        assert box.is_visible()
        toggle = page.get_by_role("button", name="Chats")
        assert toggle.get_attribute("aria-expanded") == "false"
        assert not page.get_by_label("Search conversations").is_visible()
        toggle.focus()
        page.keyboard.press("Enter")
        assert toggle.get_attribute("aria-expanded") == "true"
        assert page.get_by_label("Search conversations").is_visible()
        # Keyboard: Tab reaches controls and the focus ring is visible.
        page.keyboard.press("Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
    finally:
        context.close()
