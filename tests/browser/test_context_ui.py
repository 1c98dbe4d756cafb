"""Context windows in the web UI against a live server: the chat header's Context control sets
the conversation's strategy and keeps it across a reload; a stored summary shows as a marker
after the last message it covers and opens to its text (always plain text); an answer whose
context was fitted says so under it; and a conversation far past a small window keeps working
with the marker visible.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.browser.helpers import (
    ANSWER, api, ask, last_answer, long_message, require_route, send, wait_done,
)
from tests.browser.server import REPO, VENV_BIN, LiveServer

pytestmark = pytest.mark.browser

# Small enough that a few long messages overflow it, big enough for the newest one alone.
WINDOW = 4096


@pytest.fixture(scope="module")
def server():
    with LiveServer(CONTEXT_DEFAULT_WINDOW=str(WINDOW)) as live:
        yield live


@pytest.fixture
def context_api(server):
    require_route(server, "GET", "/api/v1/context-strategies", "the lead's context API")


def offered(page) -> dict:
    """``GET /api/v1/context-strategies``; fails clearly when no strategy plugin is installed."""
    _, data = api(page, "GET", "/context-strategies")
    if not data["strategies"]:
        pytest.fail("this test needs the context strategies plugin (helper H2's plugins/context, "
                    "installed as bestchat-context); the server offers none", pytrace=False)
    return data


def context_select(page):
    return page.get_by_label("Context", exact=True)


def shows_strategy(page, value: str) -> None:
    """Wait until the Context control is filled (strategies and the conversation loaded, in
    either order) and shows ``value`` ("" for the server default)."""
    page.wait_for_function("""([value]) => {
      const select = document.querySelector('.context-select');
      return select && select.options.length > 1 && select.value === value;
    }""", arg=[value])


def conversation_id(page) -> str:
    return page.url.rstrip("/").split("/")[-1]


def test_strategy_choice_is_saved_and_shown_after_reload(page, signed_in, context_api):
    strategies = offered(page)
    names = [s["name"] for s in strategies["strategies"]]
    ask(page, "hello")
    select = context_select(page)
    assert select.input_value() == ""
    default_label = f"Server default ({', '.join(strategies['default'])})"
    assert select.locator("option").first.inner_text() == default_label
    assert [o.get_attribute("value") for o in select.locator("option").all()][1:] == names

    chosen = names[-1]
    with page.expect_response(lambda r: r.request.method == "PATCH" and "/api/v1/conversations/" in r.url) as patched:
        select.select_option(chosen)
    assert patched.value.ok
    assert json.loads(patched.value.request.post_data) == {"context_strategy": chosen}
    page.reload()
    page.locator(ANSWER).last.wait_for()
    shows_strategy(page, chosen)
    _, conversation = api(page, "GET", f"/conversations/{conversation_id(page)}")
    assert conversation["context_strategy"] == [chosen]

    with page.expect_response(lambda r: r.request.method == "PATCH" and "/api/v1/conversations/" in r.url) as patched:
        context_select(page).select_option("")
    assert json.loads(patched.value.request.post_data) == {"context_strategy": None}
    page.reload()
    page.locator(ANSWER).last.wait_for()
    page.wait_for_timeout(300)  # the conversation list and strategies have had time to load
    shows_strategy(page, "")


def test_strategy_chosen_before_a_new_chat_is_created(page, signed_in, context_api):
    chosen = offered(page)["strategies"][0]["name"]
    context_select(page).select_option(chosen)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/conversations")) as created:
        send(page, "a new chat with a strategy")
    assert created.value.json()["context_strategy"] == [chosen]
    wait_done(page)
    shows_strategy(page, chosen)


STORE_SUMMARY = """
import json, sys, uuid
from bestchat import create_app
from bestchat.extensions import db
from bestchat.models import ContextOptimization
values = json.loads(sys.argv[1])
app = create_app()
with app.app_context():
    row = ContextOptimization(
        conversation_id=uuid.UUID(values["conversation_id"]), strategy="summarize",
        input_tokens=values["input_tokens"], output_tokens=values["output_tokens"], summary=values["summary"],
        first_message_id=uuid.UUID(values["first_message_id"]), last_message_id=uuid.UUID(values["last_message_id"]),
        details={"covered": values["covered"]})
    db.session.add(row)
    db.session.commit()
    print(row.id)
"""


def store_summary(server, **values) -> str:
    """Store a summary row in the live server's database, as the summarize strategy would."""
    done = subprocess.run([str(VENV_BIN / "python"), "-c", STORE_SUMMARY, json.dumps(values)], cwd=REPO,
                          env=server.env, check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def test_stored_summary_shows_as_a_marker_that_opens(page, signed_in, server, context_api):
    for said in ("first question", "second question", "third question"):
        ask(page, said)
    ids = page.locator("article.message").evaluate_all("els => els.map(e => e.dataset.messageId)")
    assert len(ids) == 6
    text = "The person asked two questions. <img src=x onerror=\"window.__pwned=1\"> **not bold**"
    store_summary(server, conversation_id=conversation_id(page), input_tokens=48210, output_tokens=812,
                  summary=text, first_message_id=ids[0], last_message_id=ids[3], covered=4)
    _, listed = api(page, "GET", f"/conversations/{conversation_id(page)}/messages")
    summaries = listed["context_summaries"]
    assert [s["last_message_id"] for s in summaries] == [ids[3]]

    page.reload()
    marker = page.locator("details.context-summary")
    marker.wait_for()
    assert marker.count() == 1
    # Right after the last message it covers.
    before = marker.evaluate("el => el.previousElementSibling.dataset.messageId")
    assert before == ids[3]
    title = marker.locator("summary").inner_text()
    assert title.startswith("Earlier messages summarized for the model · ")
    assert "48,210 → 812 tokens" in title
    covered = summaries[0]["covered"]
    if isinstance(covered, int):
        assert f"{covered} messages" in title
    assert not marker.locator(".context-summary-text").is_visible()
    marker.locator("summary").click()
    shown = marker.locator(".context-summary-text")
    assert shown.is_visible()
    assert shown.inner_text() == text  # as text: no image, no Markdown
    assert marker.locator("img").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def test_marker_and_context_note_render_as_text(page, signed_in):
    """The marker and the context note built directly (no server state needed)."""
    result = page.evaluate("""async () => {
      const { summaryMarker } = await import('/assets/js/chat/thread.js');
      const { contextNote } = await import('/assets/js/chat/message-view.js');
      const marker = summaryMarker({ id: 's1', last_message_id: 'm1', covered: 12, input_tokens: 96812,
        output_tokens: 950, summary: '<b>bold</b> & co' });
      document.body.append(marker);
      return {
        title: marker.querySelector('summary').textContent,
        text: marker.querySelector('p').textContent, bold: marker.querySelectorAll('b').length,
        note: contextNote({ meta: { context: { strategies: ['summarize', 'truncate'], prompt_tokens: 96812, budget: 124000 } } }),
        none: contextNote({ meta: { context: { strategies: [], prompt_tokens: 10, budget: 100 } } }),
        missing: contextNote({ meta: {} }),
      };
    }""")
    assert result["title"] == "Earlier messages summarized for the model · 12 messages, 96,812 → 950 tokens"
    assert result["text"] == "<b>bold</b> & co" and result["bold"] == 0
    assert result["note"] == "Context: summarize, truncate · 96,812 of 124,000 tokens sent"
    assert result["none"] == "" and result["missing"] == ""


def test_a_long_conversation_keeps_working_with_the_marker(page, signed_in, context_api):
    """Far past a small window: every answer completes, the model's context is summarized and the
    marker appears without a reload, and the answers say what was done to fit them."""
    offered(page)
    marker = page.locator("details.context-summary")
    for turn in range(8):
        ask(page, f"turn {turn} " + long_message(350), timeout=60000)
        if marker.count():
            break
    notes = page.locator(f"{ANSWER} .context-note").all_inner_texts()
    if not any(notes):
        pytest.fail("no answer says how its context was fitted (meta.context): generation does not "
                    "assemble prompts through the context chain on this branch", pytrace=False)
    assert any(note.startswith("Context: ") and "tokens sent" in note for note in notes), notes
    marker.wait_for(timeout=10000)
    assert marker.locator("summary").inner_text().startswith("Earlier messages summarized for the model")
    # And the conversation goes on.
    ask(page, "one more after the summary", timeout=60000)
    assert "one more after the summary" in last_answer(page).inner_text()
