"""Page helpers shared by the browser tests: sending a message, finding the answer, and
recording every text a streaming answer showed (to prove nothing was missed or doubled)."""

from __future__ import annotations

import re

from bestchat_demo import reply_to

ANSWER = "article.role-assistant"


def send(page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def last_answer(page):
    return page.locator(ANSWER).last


def expected_reply(said: str) -> str:
    """The demo model's full answer to ``said``, as text."""
    return normalize(reply_to([{"role": "user", "content": said}]))


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def long_message(words: int = 250) -> str:
    return " ".join(f"word{i}" for i in range(words))


def answer_text(page) -> str:
    return normalize(last_answer(page).locator(".message-body").inner_text())


def wait_done(page, status: str = "complete", timeout: float = 30000) -> None:
    """Wait until the last answer has ended with ``status``."""
    page.wait_for_function(
        """([selector, status]) => {
          const answers = document.querySelectorAll(selector);
          const last = answers[answers.length - 1];
          return last && last.classList.contains('status-' + status);
        }""",
        arg=[ANSWER, status], timeout=timeout)


def wait_partial(page, min_chars: int = 60) -> str:
    """Wait until the answer shows some text but is still streaming; return that text."""
    page.wait_for_function(
        """([selector, min]) => {
          const answers = document.querySelectorAll(selector);
          const last = answers[answers.length - 1];
          return last && last.getAttribute('aria-busy') === 'true' &&
                 last.querySelector('.message-body').innerText.length >= min;
        }""",
        arg=[ANSWER, min_chars])
    return answer_text(page)


RECORDER = """() => {
  window.__seen = [];
  const observer = new MutationObserver(() => {
    const answers = document.querySelectorAll('article.role-assistant .message-body');
    const last = answers[answers.length - 1];
    if (last) window.__seen.push(last.innerText);
  });
  observer.observe(document.querySelector('.messages'), { subtree: true, childList: true, characterData: true });
}"""


def record_answer(page) -> None:
    """Start recording every text the last answer shows."""
    page.evaluate(RECORDER)


def assert_only_prefixes(page, full: str) -> None:
    """Every text the answer showed was a prefix of the full answer: nothing missing or doubled."""
    seen = [normalize(text) for text in page.evaluate("window.__seen")]
    assert seen, "the answer never changed while recorded"
    for text in seen:
        assert full.startswith(text), f"shown text is not a prefix of the answer:\n{text!r}"


API_CALL = """async ([method, path, body]) => {
  const me = await (await fetch('/api/v1/me', { credentials: 'same-origin' })).json();
  const response = await fetch('/api/v1' + path, {
    method, credentials: 'same-origin',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
    body: body === null ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}"""


def api(page, method: str, path: str, body=None) -> tuple[int, object]:
    """Call the REST API as the page's signed-in user; ``(status, parsed JSON or None)``."""
    result = page.evaluate(API_CALL, [method, path, body])
    return result["status"], result["body"]


def require_route(server, method: str, path: str, owner: str) -> None:
    """Fail with a clear message when the server lacks a route a test needs (answering 404
    without a session means the route does not exist; an existing one answers 401/403/405)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{server.url}{path}", method=method, data=b"" if method != "GET" else None)
    try:
        with urllib.request.urlopen(request, timeout=5):
            return
    except urllib.error.HTTPError as error:
        if error.code == 404:
            import pytest

            pytest.fail(f"this test needs {method} {path} ({owner}); the server answered 404: "
                        "run it on a branch where that backend has landed", pytrace=False)


def ask(page, text: str, status: str = "complete", timeout: float = 30000) -> None:
    """Send ``text`` and wait until its own answer (not the previous one) has ended."""
    before = page.locator(ANSWER).count()
    send(page, text)
    page.wait_for_function("([selector, n]) => document.querySelectorAll(selector).length > n",
                           arg=[ANSWER, before], timeout=timeout)
    wait_done(page, status, timeout)
