"""Tools from the web UI, against a live server with the built-in tools and those of
``tests/web_tools.py`` (installed as a plugin distribution): a question that needs the
calculator and a page fetched with ``url_fetch`` from a server on 127.0.0.1, the fetch approved
in its card, the answer; the cards of past answers after a reload; Deny and "Always allow"; the
per-chat Tools switches; the "Tool approvals" settings.

The demo model calls the tools written in the message as ``[[name {json}]]``. Nothing here
leaves the loopback interface: the page server listens on 127.0.0.1, the one address the
server's outbound policy lets a user's connections reach (``OUTBOUND_ALLOW``).
"""

from __future__ import annotations

import http.server
import os
import threading

import pytest

from bestchat.testing.plugins import write_distribution
from tests.browser.helpers import ANSWER, answer_text, last_answer, send, wait_done
from tests.browser.server import LiveServer

pytestmark = pytest.mark.browser

PAGE_TEXT = "The answer is forty-two."
PLUGIN_SOURCE = "from tests.web_tools import register_tools  # noqa: F401 - the plugin's hook\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A live server whose plugins include the test tools (found through their entry point)."""
    site = tmp_path_factory.mktemp("web-tools-site")
    write_distribution(site, "bestchat-web-tools", "bestchat_web_tools", PLUGIN_SOURCE)
    live = LiveServer(OUTBOUND_ALLOW='["127.0.0.1/32"]')  # url_fetch may reach the page server
    live.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), live.env.get("PYTHONPATH")]))
    with live:
        yield live


@pytest.fixture(scope="module")
def page_server():
    """A web page on 127.0.0.1 for ``url_fetch``; its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            body = PAGE_TEXT.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/answer.txt"
    finally:
        httpd.shutdown()
        httpd.server_close()


def ask(page, text: str) -> None:
    """Send ``text`` and wait until its own answer is shown (not the one before)."""
    answers = page.locator(ANSWER).count()
    send(page, text)
    page.wait_for_function("([selector, count]) => document.querySelectorAll(selector).length > count",
                           arg=[ANSWER, answers])


def card(page, tool: str):
    return page.locator(f'section.toolcard[aria-label="Tool call: {tool}"]').last


def test_a_question_that_needs_the_calculator_and_an_approved_url_fetch(page, signed_in, page_server, watch):
    ask(page, f'What is 6*7, and what does my page say? [[calculator {{"expression": "6*7"}}]] '
              f'[[url_fetch {{"url": "{page_server}"}}]]')
    fetch = card(page, "url_fetch")
    fetch.get_by_text("Waiting for your approval").wait_for()
    # The calculator is low-risk: it ran without asking. The fetch waits, and so does the answer.
    card(page, "calculator").get_by_text("Done").wait_for()
    assert "42" in card(page, "calculator").inner_text()
    assert "risk: medium" in fetch.inner_text() and page_server in fetch.inner_text()
    assert "Waiting for your decision" in last_answer(page).inner_text()
    assert page.get_by_role("button", name="Stop generating").is_visible()

    fetch.get_by_role("button", name="Approve", exact=True).click()
    wait_done(page)
    fetched = card(page, "url_fetch")
    assert "Done" in fetched.inner_text() and PAGE_TEXT in fetched.inner_text()
    assert not fetched.get_by_role("button", name="Approve", exact=True).count()
    text = answer_text(page)
    assert "Tool results" in text and "42" in text and PAGE_TEXT in text

    # After a reload the answer shows its cards again, from the message list.
    page.reload()
    wait_done(page)
    assert "42" in card(page, "calculator").inner_text()
    assert PAGE_TEXT in card(page, "url_fetch").inner_text()
    assert "Done" in card(page, "url_fetch").inner_text()
    assert watch.outside == [] and watch.dialogs == []


def test_deny_in_the_card(page, signed_in):
    ask(page, '[[shout {"text": "quiet please"}]]')
    shout = card(page, "shout")
    shout.get_by_role("button", name="Deny").click()
    wait_done(page)
    assert "Denied" in card(page, "shout").inner_text()
    assert "QUIET PLEASE" not in answer_text(page)


def test_always_allow_remembers_the_choice(page, signed_in):
    ask(page, '[[shout {"text": "one"}]]')
    card(page, "shout").get_by_role("button", name="Always allow").click()
    wait_done(page)
    assert "ONE" in card(page, "shout").inner_text()
    # The next call of the tool runs at once.
    ask(page, '[[shout {"text": "two"}]]')
    wait_done(page)
    assert "TWO" in answer_text(page)
    page.goto("/settings")
    choice = page.get_by_label("shout", exact=True)
    choice.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('.approval-select')].some((s) => s.value === 'always')")
    assert choice.input_value() == "always"


def test_tools_menu_switches_a_tool_off_for_the_chat(page, signed_in):
    ask(page, '[[add {"a": 1, "b": 2}]]')
    wait_done(page)
    assert "3" in card(page, "add").inner_text()

    menu = page.get_by_role("button", name="Tools")
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    switch = page.get_by_role("switch", name="add")
    assert switch.is_checked()
    with page.expect_response(lambda r: r.request.method == "PATCH" and "/api/v1/conversations/" in r.url) as patched:
        switch.uncheck()
    assert patched.value.ok
    assert patched.value.json()["disabled_tools"] == ["add"]
    page.keyboard.press("Escape")
    assert menu.get_attribute("aria-expanded") == "false"

    ask(page, '[[add {"a": 2, "b": 2}]]')
    wait_done(page)
    assert last_answer(page).locator("section.toolcard").count() == 0

    page.reload()  # the choice is the conversation's
    page.get_by_role("button", name="Tools").click()
    assert not page.get_by_role("switch", name="add").is_checked()
    assert page.get_by_role("switch", name="shout").is_checked()


def test_tools_chosen_before_a_new_chat_is_created(page, signed_in):
    page.get_by_role("button", name="Tools").click()
    page.get_by_role("switch", name="add").uncheck()
    page.keyboard.press("Escape")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/conversations")) as created:
        ask(page, '[[add {"a": 5, "b": 5}]]')
    assert created.value.json()["disabled_tools"] == ["add"]
    wait_done(page)
    assert last_answer(page).locator("section.toolcard").count() == 0


def test_tool_approvals_settings(page, signed_in):
    page.goto("/settings")
    section = page.get_by_role("region", name="Tool approvals")
    section.wait_for()
    status = section.locator(".sandbox-status[data-available]")
    status.wait_for()
    if status.get_attribute("data-available") == "true":  # (bubblewrap is installed where CI runs)
        assert "Sandbox: bwrap" in status.inner_text()
    else:
        assert "No sandbox" in status.inner_text() and "refused" in status.inner_text()

    medium = section.get_by_label("Medium risk")
    assert medium.input_value() == ""
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith("/api/v1/tool-approvals")) as put:
        medium.select_option("always")
    assert put.value.json()["decision"] == "always"
    section.get_by_text("Saved.").wait_for()
    # The tools of that risk now run without asking.
    section.get_by_text("risk: medium; now runs without asking").first.wait_for()

    page.reload()
    section = page.get_by_role("region", name="Tool approvals")
    medium = section.get_by_label("Medium risk")
    page.wait_for_function("() => [...document.querySelectorAll('.approval-select')].some((s) => s.value === 'always')")
    assert medium.input_value() == "always"
    with page.expect_response(lambda r: r.request.method == "DELETE" and "/api/v1/tool-approvals/" in r.url) as deleted:
        medium.select_option("")
    assert deleted.value.status == 204
    section.get_by_text("Saved.").wait_for()
