"""The chat page against the real streaming pipeline and the offline demo model: answers
stream in, stop, survive a reload and a dropped socket, stay in sync across tabs, branch on
edit and regenerate, and render model output inert."""

from __future__ import annotations

import re

import pytest

from tests.browser.helpers import (
    ANSWER, answer_text, assert_only_prefixes, expected_reply, last_answer, long_message,
    record_answer, send, wait_done, wait_partial,
)

pytestmark = pytest.mark.browser


def test_answer_streams_in_token_by_token(page, signed_in):
    said = long_message(120)
    send(page, said)
    record_answer(page)
    partial = wait_partial(page)
    assert page.get_by_role("button", name="Stop generating").is_visible()
    assert not page.get_by_role("button", name="Send").is_visible()
    wait_done(page)
    full = answer_text(page)
    assert full == expected_reply(said)
    assert len(partial) < len(full)
    assert_only_prefixes(page, full)
    assert page.get_by_role("button", name="Send").is_visible()
    assert re.search(r"/c/[0-9a-f-]{36}$", page.url)
    # The conversation is listed, titled after the first question.
    assert page.locator(".conversation-link").first.inner_text().startswith("word0 word1")


def test_stop_mid_answer(page, signed_in):
    said = long_message(400)
    send(page, said)
    wait_partial(page)
    page.get_by_role("button", name="Stop generating").click()
    wait_done(page, "cancelled")
    stopped = answer_text(page)
    assert "Stopped." in stopped
    assert len(stopped) < len(expected_reply(said))
    assert page.get_by_role("button", name="Send").is_visible()


def test_reload_mid_answer_continues(page, signed_in):
    said = long_message(300)
    send(page, said)
    wait_partial(page)
    page.reload()
    last_answer(page).wait_for()
    record_answer(page)
    wait_done(page)
    full = expected_reply(said)
    assert answer_text(page) == full
    assert_only_prefixes(page, full)


def test_dropped_socket_resumes_exactly(page, signed_in, server):
    said = long_message(400)
    send(page, said)
    record_answer(page)
    wait_partial(page, min_chars=100)
    server.relay.cut()
    page.wait_for_selector("#connection[data-state='closed']", timeout=5000)
    page.wait_for_selector("#connection[data-state='open']", timeout=15000)
    wait_done(page)
    full = expected_reply(said)
    assert answer_text(page) == full
    assert_only_prefixes(page, full)


def test_two_tabs_stay_in_sync(context, page, signed_in):
    send(page, "first question")
    wait_done(page)
    other = context.new_page()
    other.goto(page.url)
    other.locator(ANSWER).first.wait_for()
    other.locator(".conversation-link").first.wait_for()
    assert other.locator(".conversation-link").count() == 1

    # Typing in one tab shows in the other.
    page.get_by_label("Message", exact=True).type("ty")
    other.get_by_text("is typing…").wait_for()

    # A message sent in one tab streams into the other.
    said = long_message(60)
    send(page, said)
    other.wait_for_function("() => document.querySelectorAll('article.role-assistant').length === 2")
    wait_done(other)
    assert answer_text(other) == expected_reply(said)

    # A rename and a delete in one tab show in the other.
    page.get_by_role("button", name=re.compile("^Rename")).click()
    page.get_by_label("New title").fill("Renamed chat")
    page.get_by_label("New title").press("Enter")
    other.get_by_role("link", name="Renamed chat").wait_for()
    page.get_by_role("button", name=re.compile("^Delete")).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    other.get_by_text("No chats yet.").wait_for()
    other.wait_for_url(re.compile(r"/$"))


def test_regenerate_and_edit_make_branches(page, signed_in):
    send(page, "original question")
    wait_done(page)
    last_answer(page).get_by_role("button", name="Regenerate").click()
    page.get_by_text("2 / 2").wait_for()
    wait_done(page)
    page.get_by_role("button", name="Previous version").click()
    page.get_by_text("1 / 2").wait_for()

    page.locator("article.role-user").get_by_role("button", name="Edit").click()
    page.get_by_label("Edit your message").fill("edited question")
    page.get_by_role("button", name="Send edit").click()
    page.locator("article.role-user .plain", has_text="edited question").wait_for()
    wait_done(page)
    assert answer_text(page) == expected_reply("edited question")
    user = page.locator("article.role-user")
    assert user.get_by_text("2 / 2").is_visible()
    user.get_by_role("button", name="Previous version").click()
    page.locator("article.role-user .plain", has_text="original question").wait_for()
    assert answer_text(page) == expected_reply("original question")


HOSTILE = ("Look <img src=x onerror=alert(1)> and <script>alert(2)</script> "
           "[click me](javascript:alert(3)) ![tracker](http://evil.example/pixel.png) **bold**")


def test_hostile_message_renders_inert(page, signed_in, watch):
    send(page, HOSTILE)
    wait_done(page)
    page.wait_for_timeout(500)
    body = last_answer(page).locator(".message-body")
    assert body.locator("strong", has_text="bold").count() == 1
    assert body.locator("script").count() == 0
    assert body.locator("[onerror]").count() == 0
    assert body.locator("a[href^='javascript']").count() == 0
    assert body.locator("img").count() == 0
    tracker = body.get_by_role("link", name="Image: tracker (not loaded)")
    assert tracker.get_attribute("rel") == "noopener noreferrer nofollow"
    assert tracker.get_attribute("target") == "_blank"
    # The user's own message is shown as typed, as text.
    assert page.locator("article.role-user .plain").inner_text() == HOSTILE
    assert watch.dialogs == []
    assert watch.outside == []


def test_markdown_rendering(page, signed_in):
    """Code blocks get a language label and a copy button; tables, lists and links render."""
    html = page.evaluate("""async () => {
      const { renderMarkdown } = await import('/assets/js/markdown.js');
      const box = document.createElement('div');
      box.id = 'md-test';
      box.append(renderMarkdown('# Title\\n\\n- one\\n- two\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n\\n' +
        '```python\\nprint("hi")\\n```\\n\\n[site](https://example.org) <a href="https://x.test" target="_self">x</a>'));
      document.body.append(box);
      return box.innerHTML;
    }""")
    box = page.locator("#md-test")
    assert box.locator(".codeblock-lang").inner_text() == "python"
    assert box.get_by_role("button", name="Copy code").count() == 1
    assert box.locator("table td").count() == 2
    assert box.locator("li").count() == 2
    for link in box.locator("a").all():
        assert link.get_attribute("target") == "_blank"
        assert "noopener" in link.get_attribute("rel")
    assert "print" in html


def test_failed_answer_shows_error_with_retry(page, signed_in):
    page.wait_for_selector(".model-select option[value='demo/demo']", state="attached")
    page.evaluate("""() => {
      const select = document.querySelector('.model-select');
      select.append(new Option('nosuch/model', 'nosuch/model'));
      select.value = 'nosuch/model';
    }""")
    send(page, "will this work?")
    wait_done(page, "failed")
    error = last_answer(page).get_by_role("alert")
    assert error.inner_text().startswith("Error:")
    page.get_by_label("Model").select_option("demo/demo")
    error.get_by_role("button", name="Retry").click()
    page.get_by_text("2 / 2").wait_for()
    wait_done(page)
    assert answer_text(page) == expected_reply("will this work?")


def test_sidebar_search_and_new_chat(page, signed_in):
    send(page, "apples and pears")
    wait_done(page)
    send(page, "zucchini soup")
    wait_done(page)
    page.get_by_role("link", name="+ New chat").click()
    page.get_by_role("heading", name="How can I help?").wait_for()
    send(page, "bananas")
    wait_done(page)
    links = page.locator(".conversation-link")
    assert links.all_inner_texts() == ["bananas", "apples and pears"]  # newest first
    search = page.get_by_label("Search conversations")
    search.fill("pears")
    page.wait_for_function("() => document.querySelectorAll('.conversation-link').length === 1")
    search.fill("zucchini")  # only in a message, found by the server
    page.get_by_role("link", name="apples and pears").wait_for()
    assert links.all_inner_texts() == ["apples and pears"]
    search.fill("")
    page.wait_for_function("() => document.querySelectorAll('.conversation-link').length === 2")
