"""Sending, generating, cancelling, regenerating, editing and streaming messages, with the
generation job running in-process on both backends (integration tests run real workers)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from bestchat.context import tokens
from bestchat.extensions import db
from bestchat.models import Message, UsageLog
from bestchat.models.base import utcnow
from bestchat.providers.base import ProviderAuthError, ProviderRateLimited
from bestchat.reaper import reap
from bestchat.services import generation
from bestchat.streaming.frame_writer import running
from bestchat.streaming import events, get_bus
from bestchat.streaming import sse as sse_writer
from bestchat.testing.client import assert_error
from tests.chat_fakes import GatedProvider, app_config, gated, jobs, wait_for  # noqa: F401
from tests.socket_client import SocketClient, memory_bus

API = "/api/v1"
DEMO_REPLY = 'Hello! I am the offline demo model. You said: "{}". Configure a real provider to get real answers.'


def new_conversation(client, **body) -> str:
    body.setdefault("settings", {"tokens_per_second": 0})
    return client.post(f"{API}/conversations", body).get_json()["id"]


def send(client, conversation_id, content="hi there", **extra):
    response = client.post(f"{API}/conversations/{conversation_id}/messages", {"content": content, **extra})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def row(app, message_id) -> Message:
    with app.app_context():
        message = db.session.get(Message, uuid.UUID(str(message_id)))
        db.session.expunge(message)
        return message


def stream_events(app, message_id, after=0) -> list[dict]:
    return [d.event for d in get_bus(app).replay(str(message_id), after)]


def chunks(app, message_id) -> list[dict]:
    return [e for e in stream_events(app, message_id) if e["type"] == events.CHUNK]


def sse(client, message_id, query="", headers=None) -> list[tuple[str | None, str, dict]]:
    response = client.get(f"{API}/messages/{message_id}/stream{query}", headers=headers)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    frames = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in fields:
            frames.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return frames


def streaming_answer(app, client, first: str) -> tuple[str, dict]:
    """A gated answer whose first chunk (``first``) is out: (conversation id, answer)."""
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    GatedProvider.feed.put(first)
    wait_for(lambda: len(chunks(app, answer["id"])) == 1)
    return conversation_id, answer


def test_send_answers_with_gap_free_chunks_usage_and_title(app, client, user, jobs):
    conversation_id = new_conversation(client)
    body = send(client, conversation_id, "hi   there", client_id="c1")
    question, answer = body["user_message"], body["assistant_message"]
    assert question["role"] == "user" and question["status"] == "complete"
    assert answer["role"] == "assistant" and answer["status"] == "pending"
    assert answer["parent_id"] == question["id"]
    jobs.join(15)

    message = row(app, answer["id"])
    assert message.status == "complete" and message.content == DEMO_REPLY.format("hi there")
    assert (message.provider, message.model) == ("demo", "demo/demo")
    parts = chunks(app, answer["id"])
    assert [c["seq"] for c in parts] == list(range(1, len(parts) + 1)) and message.last_seq == len(parts)
    assert "".join(c["delta"] for c in parts) == message.content
    assert parts[0]["delta"].startswith("Hello!")  # deltas that arrive together share a frame
    final = stream_events(app, answer["id"])[-1]
    assert final["type"] == events.COMPLETED and final["status"] == "complete"
    assert final["usage"]["completion_tokens"] == len(message.content.split())
    # the stored count is what a later prompt costs: tiktoken's, with the message overhead
    assert message.token_count == tokens.message_tokens(message.content)
    with app.app_context():
        usage = db.session.scalars(select(UsageLog)).all()
        assert [(u.provider, u.model, u.completion_tokens) for u in usage] == [
            ("demo", "demo", len(message.content.split()))]
    assert client.get(f"{API}/conversations/{conversation_id}").get_json()["title"] == "hi there"


def test_filters_run_around_generation_and_prompt_is_the_branch(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g", system_prompt="be brief")
    answer = send(client, conversation_id, "first")["assistant_message"]
    GatedProvider.feed.put("one")
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, answer["id"]).status == "complete")
    assert GatedProvider.prompts[-1] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
        {"role": "system", "content": "filtered"}]
    assert gated.finished == ["one"]
    with app.app_context():
        cost = db.session.scalar(select(UsageLog.cost))
        assert float(cost) == 0.25

    second = send(client, conversation_id, "second")["assistant_message"]
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, second["id"]).status == "complete")
    assert [m["content"] for m in GatedProvider.prompts[-1]] == ["be brief", "first", "one", "second", "filtered"]


def test_the_prompt_is_the_edited_branch_without_failed_or_empty_answers(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")

    def answered(sent: dict, *feed: object) -> dict:
        fails = any(isinstance(item, BaseException) for item in feed)
        for item in feed if fails else (*feed, None):
            GatedProvider.feed.put(item)
        answer = sent["assistant_message"]
        wait_for(lambda: row(app, answer["id"]).status in ("complete", "failed"))
        return sent

    first = answered(send(client, conversation_id, "one"), "A")
    answered(send(client, conversation_id, "two"), ProviderRateLimited("slow down"))  # failed
    answered(send(client, conversation_id, "three"))  # complete but empty
    answered(send(client, conversation_id, "four"), "D")
    assert [m["content"] for m in GatedProvider.prompts[-1]] == ["one", "A", "two", "three", "four", "filtered"]

    edited = client.patch(f"{API}/messages/{first['user_message']['id']}", {"content": "uno"}).get_json()
    answered(edited, "B")
    assert [m["content"] for m in GatedProvider.prompts[-1]] == ["uno", "filtered"]  # the old branch is out
    answered(send(client, conversation_id, "dos"), "C")
    assert [(m["role"], m["content"]) for m in GatedProvider.prompts[-1]] == [
        ("user", "uno"), ("assistant", "B"), ("user", "dos"), ("system", "filtered")]


def test_deltas_that_arrive_together_share_a_frame(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    GatedProvider.feed.put("a")
    wait_for(lambda: len(chunks(app, answer["id"])) == 1)
    for text in ("b", "c", "d"):
        GatedProvider.feed.put(text)
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, answer["id"]).status == "complete")
    assert [(c["seq"], c["delta"]) for c in chunks(app, answer["id"])] == [(1, "a"), (2, "bcd")]


def test_cancel_mid_stream_stops_within_one_chunk(app, client, user, gated):
    conversation_id, answer = streaming_answer(app, client, "partial")
    response = client.post(f"{API}/messages/{answer['id']}/cancel")
    assert response.status_code == 200
    GatedProvider.feed.put(" more")
    wait_for(lambda: row(app, answer["id"]).status == "cancelled")
    message = row(app, answer["id"])
    assert len(chunks(app, answer["id"])) <= 2
    assert message.content == "".join(c["delta"] for c in chunks(app, answer["id"]))
    assert GatedProvider.closed == [True]  # the provider stream was closed
    final = stream_events(app, answer["id"])[-1]
    assert final["type"] == events.COMPLETED and final["status"] == "cancelled"


def test_cancel_while_the_provider_is_silent_stops_at_once(app, client, user, gated):
    conversation_id, answer = streaming_answer(app, client, "thinking")
    assert client.post(f"{API}/messages/{answer['id']}/cancel").status_code == 200
    # no further provider event is needed for the job to notice
    wait_for(lambda: row(app, answer["id"]).status == "cancelled")
    assert row(app, answer["id"]).content == "thinking" and GatedProvider.closed == [True]
    assert stream_events(app, answer["id"])[-1]["status"] == "cancelled"


def test_partial_content_is_saved_while_streaming(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    GatedProvider.feed.put("half an ")
    GatedProvider.feed.put("answer")
    wait_for(lambda: "".join(c["delta"] for c in chunks(app, answer["id"])) == "half an answer")
    saved = wait_for(lambda: (m := row(app, answer["id"])).content == "half an answer" and m)
    assert saved.status == "streaming" and saved.last_seq == len(chunks(app, answer["id"]))
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, answer["id"]).status == "complete")


def test_a_provider_silent_for_the_idle_timeout_fails_the_answer(app, client, user, gated):
    running(app).idle_seconds = 0.3
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    GatedProvider.feed.put("so far")
    wait_for(lambda: row(app, answer["id"]).status == "failed")
    message = row(app, answer["id"])
    assert message.error_code == "provider_timeout" and message.content == "so far"
    assert stream_events(app, answer["id"])[-1]["error"]["code"] == "provider_timeout"


def test_cancel_before_the_job_starts(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    body = client.post(f"{API}/messages/{answer['id']}/cancel").get_json()
    assert body["message"]["status"] == "cancelled"
    app.extensions["bestchat_dispatcher"].join(5)
    assert GatedProvider.prompts == []  # the job found it cancelled and did nothing
    assert [e["type"] for e in stream_events(app, answer["id"])] == [events.COMPLETED]
    assert client.post(f"{API}/messages/{answer['id']}/cancel").get_json()["message"]["status"] == "cancelled"


def test_provider_errors_fail_the_message_with_a_clear_error(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    GatedProvider.feed.put("so far")
    GatedProvider.feed.put(ProviderRateLimited("the provider is rate limiting requests; try again later", status=429))
    wait_for(lambda: row(app, answer["id"]).status == "failed")
    message = row(app, answer["id"])
    assert message.content == "so far" and "rate limiting" in message.error
    assert message.error_code == "provider_rate_limited"
    final = stream_events(app, answer["id"])[-1]
    assert final["type"] == events.FAILED and final["error"]["code"] == "provider_rate_limited"
    # Once the stream has expired, a resume still reports why it failed (from the row).
    drop_stream(app, answer["id"])
    frames = sse(client, answer["id"])
    assert [f[1] for f in frames] == [events.FAILED]
    assert frames[0][2]["error"]["code"] == "provider_rate_limited"


def test_a_provider_bug_fails_the_answer_naming_the_provider_without_details(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    GatedProvider.feed.put(RuntimeError("secret internals sk-123"))
    wait_for(lambda: row(app, answer["id"]).status == "failed")
    final = stream_events(app, answer["id"])[-1]
    assert final["error"] == {"code": "provider_failed",
                              "message": "the provider 'gated' (plugin test-gated) failed: an unexpected error"}
    assert "sk-123" not in row(app, answer["id"]).error


def test_unknown_model_and_missing_key_fail(app, client, user, jobs):
    conversation_id = new_conversation(client)
    unknown = send(client, conversation_id, model="nope/never")["assistant_message"]
    jobs.join(15)
    assert stream_events(app, unknown["id"])[-1]["error"]["code"] == "unknown_model"
    keyed = send(client, conversation_id, model="openai/gpt-4o-mini")["assistant_message"]
    jobs.join(15)
    message = row(app, keyed["id"])
    assert message.status == "failed" and "key" in message.error
    assert stream_events(app, keyed["id"])[-1]["error"]["code"] == "provider_key_missing"


def test_sending_while_an_answer_is_streaming_is_409(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    send(client, conversation_id)
    response = client.post(f"{API}/conversations/{conversation_id}/messages", {"content": "again"})
    assert_error(response, 409, "generation_in_progress")


def test_regenerate_adds_a_sibling_and_keeps_the_old_answer(app, client, user, jobs):
    conversation_id = new_conversation(client)
    first = send(client, conversation_id, "question")
    jobs.join(15)
    old = first["assistant_message"]["id"]
    response = client.post(f"{API}/messages/{old}/regenerate")
    assert response.status_code == 202
    new = response.get_json()["assistant_message"]
    assert new["parent_id"] == first["user_message"]["id"] and new["status"] == "pending"
    jobs.join(15)
    page = client.get(f"{API}/conversations/{conversation_id}/messages").get_json()
    assert page["siblings"][new["id"]] == [old, new["id"]] and page["leaf_id"] == new["id"]
    assert {m["id"]: m["status"] for m in page["messages"]}[old] == "complete"
    assert_error(client.post(f"{API}/messages/{first['user_message']['id']}/regenerate"), 409, "not_regenerable")


def test_edit_creates_a_branch_and_the_old_one_stays(app, client, user, jobs):
    conversation_id = new_conversation(client)
    first = send(client, conversation_id, "original")
    jobs.join(15)
    follow = send(client, conversation_id, "follow up")
    jobs.join(15)
    response = client.patch(f"{API}/messages/{first['user_message']['id']}", {"content": "edited"})
    assert response.status_code == 202
    edited = response.get_json()
    assert edited["user_message"]["parent_id"] is None and edited["user_message"]["content"] == "edited"
    jobs.join(15)
    assert row(app, edited["assistant_message"]["id"]).content == DEMO_REPLY.format("edited")
    page = client.get(f"{API}/conversations/{conversation_id}/messages").get_json()
    assert page["siblings"][edited["user_message"]["id"]] == [first["user_message"]["id"], edited["user_message"]["id"]]
    assert row(app, follow["assistant_message"]["id"]).content == DEMO_REPLY.format("follow up")
    assert_error(client.patch(f"{API}/messages/{first['assistant_message']['id']}", {"content": "x"}), 409, "not_editable")
    # the next message continues the new branch
    after = send(client, conversation_id, "next")
    assert after["user_message"]["parent_id"] == edited["assistant_message"]["id"]


def test_message_pages_newest_first(app, client, user, jobs):
    conversation_id = new_conversation(client)
    for text in ("one", "two", "three"):
        send(client, conversation_id, text)
        jobs.join(15)
    url = f"{API}/conversations/{conversation_id}/messages"
    newest = client.get(f"{url}?limit=4").get_json()
    assert [m["content"] for m in newest["messages"]][::2] == ["two", "three"] and newest["has_more"]
    older = client.get(f"{url}?limit=4&before={newest['messages'][0]['id']}").get_json()
    assert [m["content"] for m in older["messages"]][0] == "one" and not older["has_more"]
    assert len(older["messages"]) == 2


def test_sse_replays_a_finished_answer_and_resumes(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id, "tell me")["assistant_message"]
    for seq, text in enumerate(("Once ", "upon ", "a time"), start=1):
        GatedProvider.feed.put(text)
        wait_for(lambda: len(chunks(app, answer["id"])) == seq)
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, answer["id"]).status == "complete")
    content = row(app, answer["id"]).content
    frames = sse(client, answer["id"])
    assert [f[1] for f in frames][-1] == events.COMPLETED
    chunk_frames = [f for f in frames if f[1] == events.CHUNK]
    assert [int(f[0]) for f in chunk_frames] == [f[2]["seq"] for f in chunk_frames] == list(range(1, len(chunk_frames) + 1))
    assert "".join(f[2]["delta"] for f in chunk_frames) == content == "Once upon a time"
    assert len(chunk_frames) == 3

    resumed = sse(client, answer["id"], "?after=1")
    assert [f[2]["seq"] for f in resumed if f[1] == events.CHUNK] == list(range(2, len(chunk_frames) + 1))
    by_header = sse(client, answer["id"], "?after=0", headers={"Last-Event-ID": str(len(chunk_frames))})
    assert [f[1] for f in by_header] == [events.COMPLETED]
    assert_error(client.get(f"{API}/messages/{answer['id']}/stream", headers={"Last-Event-ID": "x"}), 400)


def test_an_idle_sse_stream_gets_keep_alive_lines_and_resumes_live_after_the_seq(app, client, user, gated,
                                                                                 monkeypatch):
    monkeypatch.setattr(sse_writer, "KEEPALIVE_SECONDS", 0.01)
    memory_bus(app)
    _conversation_id, answer = streaming_answer(app, client, "Once ")
    response = client.get(f"{API}/messages/{answer['id']}/stream?after=1", buffered=False)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-cache"
    blocks = (block.decode() for block in response.iter_encoded())
    assert next(blocks) == "retry: 1000\n\n"
    assert next(blocks) == ": keep-alive\n\n"  # nothing after seq 1 yet
    GatedProvider.feed.put("upon")
    GatedProvider.feed.put(None)
    # (the events queued together arrive in one piece: split it into events)
    rest = [dict(line.split(": ", 1) for line in event.splitlines())
            for event in "".join(blocks).split("\n\n") if event and event != ": keep-alive"]
    response.close()
    assert [(fields.get("id"), fields["event"]) for fields in rest] == [("2", "chunk"), (None, "message.completed")]
    assert json.loads(rest[0]["data"])["delta"] == "upon"
    assert json.loads(rest[1]["data"])["message"]["content"] == "Once upon"


def test_sse_of_an_expired_stream_still_ends(app, client, user, jobs):
    conversation_id = new_conversation(client)
    answer = send(client, conversation_id)["assistant_message"]
    jobs.join(15)
    drop_stream(app, answer["id"])
    frames = sse(client, answer["id"])
    assert [f[1] for f in frames] == [events.COMPLETED]
    assert frames[0][2]["message"]["content"] == row(app, answer["id"]).content


def test_a_socket_subscribed_after_a_seq_gets_the_rest_of_the_answer_then_live_chunks(app, client, user, gated):
    memory_bus(app)
    conversation_id, answer = streaming_answer(app, client, "Once ")
    GatedProvider.feed.put("upon ")
    wait_for(lambda: len(chunks(app, answer["id"])) == 2)
    with SocketClient(app, user["id"]) as socket:
        socket.send({"type": "subscribe", "conversation_id": conversation_id, "message_id": answer["id"],
                     "after_seq": 1})
        assert [(f["type"], f["seq"], f["delta"]) for f in [socket.receive()]] == [("chunk", 2, "upon ")]
        GatedProvider.feed.put("a time")
        GatedProvider.feed.put(None)
        live = socket.receive_until(events.COMPLETED)
        assert [(f["type"], f.get("seq")) for f in live] == [("chunk", 3), (events.COMPLETED, None)]
        assert live[-1]["message"]["content"] == "Once upon a time"
        socket.send({"type": "subscribe", "conversation_id": conversation_id, "message_id": answer["id"],
                     "after_seq": -1})
        refused = socket.receive_until("error")[-1]  # (after the conversation's own late events)
        assert (refused["type"], refused["code"]) == ("error", "invalid_field")


def test_a_socket_subscribed_to_an_expired_stream_gets_the_stored_end(app, client, user, jobs):
    memory_bus(app)
    conversation_id = new_conversation(client)
    answer = send(client, conversation_id)["assistant_message"]
    jobs.join(15)
    drop_stream(app, answer["id"])
    with SocketClient(app, user["id"]) as socket:
        final = socket.ask({"type": "subscribe", "conversation_id": conversation_id, "message_id": answer["id"]})
        assert final["type"] == events.COMPLETED and final["status"] == "complete"
        assert final["message"]["content"] == row(app, answer["id"]).content
        assert socket.ask({"type": "ping"}) == {"type": "pong"}


def drop_stream(app, message_id: str) -> None:
    """Forget a message's stream, as its expiry does."""
    bus = get_bus(app)
    if hasattr(bus, "redis"):
        bus.redis.delete(f"bc:stream:{message_id}")
    else:
        bus._streams.pop(message_id)


def test_messages_of_other_users_are_not_found(app, client, user, jobs):
    conversation_id = new_conversation(client)
    body = send(client, conversation_id)
    jobs.join(15)
    other = client.new()
    other.signup("bob@example.com", "correct horse battery")
    answer, question = body["assistant_message"]["id"], body["user_message"]["id"]
    for response in (other.get(f"{API}/messages/{answer}"), other.get(f"{API}/messages/{answer}/stream"),
                     other.post(f"{API}/messages/{answer}/cancel"), other.post(f"{API}/messages/{answer}/regenerate"),
                     other.patch(f"{API}/messages/{question}", {"content": "x"}),
                     other.get(f"{API}/messages/not-an-id")):
        assert_error(response, 404, "not_found")


def test_deleting_a_conversation_stops_its_generation(app, client, user, gated):
    conversation_id, answer = streaming_answer(app, client, "x")
    assert client.delete(f"{API}/conversations/{conversation_id}").status_code == 204
    GatedProvider.feed.put("y")
    wait_for(lambda: GatedProvider.closed)
    with app.app_context():
        assert db.session.get(Message, uuid.UUID(answer["id"])) is None


def _age(app, message_id, seconds):
    with app.app_context():
        db.session.execute(update(Message).where(Message.id == uuid.UUID(message_id))
                           .values(updated_at=utcnow() - timedelta(seconds=seconds)))
        db.session.commit()


def test_reaper_interrupts_a_message_whose_worker_died(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    for text in ("Hello", " wor"):
        GatedProvider.feed.put(text)
        wait_for(lambda n=len(chunks(app, answer["id"])): len(chunks(app, answer["id"])) == n + 1)
    app.extensions["bestchat_dispatcher"].pool.kill()  # the "worker" dies without a word
    bus = get_bus(app)
    bus.append_many([(conversation_id, answer["id"], events.chunk(
        message_id=answer["id"], conversation_id=conversation_id, seq=3, delta="ld"))])
    with app.app_context():
        assert reap(app) == 0  # still fresh
    _age(app, answer["id"], app.config["REAPER_STALE_AFTER"] + 5)
    with app.app_context():
        assert reap(app) == 1
        assert reap(app) == 0
    message = row(app, answer["id"])
    assert message.status == "interrupted" and message.content == "Hello world" and message.last_seq == 3
    final = stream_events(app, answer["id"])[-1]
    assert final["type"] == events.FAILED and final["error"]["code"] == "interrupted"


def test_reaper_interrupts_old_pending_messages_and_redelivery_does_not_restart(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    app.extensions["bestchat_dispatcher"].pool.kill()
    _age(app, answer["id"], app.config["REAPER_PENDING_AFTER"] + 5)
    with app.app_context():
        assert reap(app) == 1
    assert row(app, answer["id"]).status == "interrupted"

    second = send(client, f"{conversation_id}")
    assert second  # a new exchange after the interrupted answer is allowed
    app.extensions["bestchat_dispatcher"].pool.kill()
    with app.app_context():
        db.session.execute(update(Message).where(Message.id == uuid.UUID(second["assistant_message"]["id"]))
                           .values(status="streaming"))
        db.session.commit()
        generation.generate(second["assistant_message"]["id"])  # as a redelivered job would
    assert row(app, second["assistant_message"]["id"]).status == "interrupted"
    assert GatedProvider.prompts == []


def test_auth_errors_are_key_free(app, client, user, gated):
    conversation_id = new_conversation(client, model="gated/g")
    answer = send(client, conversation_id)["assistant_message"]
    GatedProvider.feed.put(ProviderAuthError("the provider refused the API key", status=401))
    wait_for(lambda: row(app, answer["id"]).status == "failed")
    assert stream_events(app, answer["id"])[-1]["error"]["code"] == "provider_auth"
