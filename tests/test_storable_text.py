"""Text from providers the databases cannot store (NUL, lone surrogates) never leaves an answer
``streaming``: deltas are made storable (U+FFFD) before they are published and saved, so the
stream and the row agree, and a save the database refuses anyway ends the answer without the
refused content. Both backends; the generation runs in this process (the gated provider)."""

from __future__ import annotations

import json
import uuid

from bestchat.providers.base import ProviderError
from bestchat.models.message_status import ACTIVE, MessageStatus
from bestchat.store import get_store
from bestchat.streaming import events, get_bus
from bestchat.streaming.frame_writer import running
from bestchat.text import is_storable, storable
from tests.chat_fakes import GatedProvider, app_config, gated, wait_for  # noqa: F401
from tests.test_admission import row

API = "/api/v1"


def start_answer(client) -> dict:
    conversation_id = client.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
    response = client.post(f"{API}/conversations/{conversation_id}/messages", {"content": "hi"})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["assistant_message"]


def stream_events(app, message_id) -> list[dict]:
    return [d.event for d in get_bus(app).replay(str(message_id), 0)]


def sse_events(client, message_id) -> list[dict]:
    """The answer's SSE stream read to its end (it returns once the terminal event is sent)."""
    body = client.get(f"{API}/messages/{message_id}/stream").get_data(as_text=True)
    return [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]


def test_storable_replaces_nul_and_lone_surrogates_only():
    assert storable("plain text, é, 😀") == "plain text, é, 😀"
    assert storable("a\x00b\ud800c\udfffd") == "a\ufffdb\ufffdc\ufffdd"
    assert not is_storable("\ud83d") and not is_storable("\x00") and is_storable("😀")


def test_nul_and_lone_surrogates_from_a_provider_end_complete_as_u_fffd(app, client, user, gated):
    answer = start_answer(client)
    for text in ("a\x00b", " c\ud800d", "\udfff"):
        GatedProvider.feed.put(text)
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, answer["id"]).status not in ACTIVE)

    message = row(app, answer["id"])
    assert message.status == "complete" and message.content == "a\ufffdb c\ufffdd\ufffd"
    chunks = [e for e in stream_events(app, answer["id"]) if e["type"] == events.CHUNK]
    assert "".join(c["delta"] for c in chunks) == message.content  # streamed as stored
    streamed = sse_events(client, answer["id"])
    assert streamed[-1]["type"] == events.COMPLETED and streamed[-1]["message"]["content"] == message.content
    assert client.get(f"{API}/messages/{answer['id']}").get_json()["content"] == message.content


def test_a_provider_error_with_nul_fails_the_answer_with_a_storable_error(app, client, user, gated):
    answer = start_answer(client)
    GatedProvider.feed.put("so far")
    GatedProvider.feed.put(ProviderError("the upstream said \x00\ud800"))
    wait_for(lambda: row(app, answer["id"]).status == "failed")
    message = row(app, answer["id"])
    assert message.content == "so far" and message.error == "the upstream said \ufffd\ufffd"
    final = sse_events(client, answer["id"])[-1]
    assert final["type"] == events.FAILED and final["error"]["code"] == "provider_error"


def test_a_final_save_the_database_refuses_ends_the_answer_failed_without_it(app, client, user, gated):
    answer = start_answer(client)
    GatedProvider.feed.put("partial")
    wait_for(lambda: row(app, answer["id"]).content == "partial")  # (the heartbeat's save)
    with app.app_context():
        ended = get_store().finish(uuid.UUID(answer["id"]), MessageStatus.COMPLETE,
                                   from_statuses=(MessageStatus.STREAMING,), content="partial\ud800", last_seq=5)
        assert ended is not None
    message = row(app, answer["id"])
    assert (message.status, message.error_code, message.content, message.last_seq) == (
        "failed", "unstorable", "partial", 1)
    final = stream_events(app, answer["id"])[-1]
    assert final["type"] == events.FAILED and final["error"]["code"] == "unstorable"
    GatedProvider.feed.put(None)  # the job then finds its answer ended and stops quietly


def test_one_answer_the_database_refuses_does_not_stop_the_others_heartbeats(app, client, user, gated):
    good, bad = start_answer(client), start_answer(client)
    wait_for(lambda: {good["id"], bad["id"]} <= set(running(app).live))
    lives = running(app).live
    lives[good["id"]].content.append("fine")
    lives[bad["id"]].content.append("got through\ud800")  # (as if a delta had not been made storable)
    before = row(app, bad["id"]).updated_at

    running(app).save_all()
    assert row(app, good["id"]).content == "fine"
    refused = row(app, bad["id"])
    assert refused.status == "streaming" and refused.content == "" and refused.updated_at > before
    assert lives[good["id"]].outcome is None and lives[bad["id"]].outcome is None  # both go on

    GatedProvider.feed.put(None)
    GatedProvider.feed.put(None)
    wait_for(lambda: {row(app, good["id"]).status, row(app, bad["id"]).status} <= {"complete", "failed"})
    assert row(app, good["id"]).status == "complete"
    assert (row(app, bad["id"]).status, row(app, bad["id"]).error_code) == ("failed", "unstorable")
    assert sse_events(client, bad["id"])[-1]["type"] == events.FAILED
