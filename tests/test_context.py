"""Long conversations end to end, with jobs in-process on both backends: token counts stored
when messages are written, each answer's prompt fitted into its model's window by the
conversation's strategies (recorded, and said in the answer's meta), summaries made, reused and
refreshed, a send that can never fit refused before anything is stored, attached files and
images reaching the model."""

from __future__ import annotations

import base64
import uuid
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from bestchat import plugins
from bestchat.context import tokens
from bestchat.context.summaries import INSTRUCTIONS
from bestchat.extensions import db
from bestchat.hookspecs import hookimpl
from bestchat.models import ContextOptimization, Message
from bestchat.providers.base import Event, Finish, Provider, TextDelta, Usage
from tests.chat_fakes import jobs, wait_for  # noqa: F401
from tests.socket_client import SocketClient, memory_bus
from tests.test_messages import API, new_conversation, row, send

SUMMARY_START = INSTRUCTIONS.split("{")[0][:40]
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


class Recorder(Provider):
    """Answers at once and records every prompt; a summary request gets a short summary."""

    name = "recorder"
    needs_key = False
    supports_vision = False
    default_models = ("r", "eyes")
    prompts: list[list[dict[str, Any]]] = []

    def accepts_images(self, model: str) -> bool | None:
        return model == "eyes"

    def stream(self, model, messages, *, options=None, tools=None) -> Iterator[Event]:
        Recorder.prompts.append(messages)
        summarizing = str(messages[0].get("content", "")).startswith(SUMMARY_START)
        yield TextDelta(f"SUMMARY of {len(messages[-1]['content'])} characters" if summarizing else "ok")
        yield Usage(prompt_tokens=1, completion_tokens=1)
        yield Finish()


class RecorderPlugin:
    @hookimpl
    def register_providers(self, register):
        register(Recorder)


@pytest.fixture
def app_config():
    return {"JOBS_IN_PROCESS": True, "CONTEXT_ANSWER_RESERVE": 200}


@pytest.fixture
def recorder(app, jobs):
    Recorder.prompts = []
    plugins.register_plugin(RecorderPlugin(), "test-recorder")
    try:
        yield Recorder
    finally:
        plugins.unregister_plugin("test-recorder")


def answered(app, message_id) -> Message:
    return wait_for(lambda: row(app, message_id).status in ("complete", "failed") and row(app, message_id))


def prose(turn: int, words: int = 220) -> str:
    """Varied text of about ``words`` words (real tokens, not one repeated token)."""
    return " ".join(f"turn{turn} word{index} {('alpha', 'beta', 'gamma', 'delta')[index % 4]}"
                    for index in range(words // 3))


def prompt_tokens(prompt: list[dict[str, Any]]) -> int:
    return sum(tokens.message_tokens(m["content"] if isinstance(m["content"], str) else "") for m in prompt)


def optimizations(app, strategy: str | None = None) -> list[ContextOptimization]:
    with app.app_context():
        statement = select(ContextOptimization).order_by(ContextOptimization.created_at)
        if strategy:
            statement = statement.where(ContextOptimization.strategy == strategy)
        rows = list(db.session.scalars(statement))
        db.session.expunge_all()
        return rows


def test_token_counts_are_stored_when_messages_are_written(app, client, user, recorder):
    conversation = new_conversation(client, model="recorder/r")
    sent = send(client, conversation, "How many tokens is this sentence?")
    assert sent["user_message"]["token_count"] == tokens.count_text("How many tokens is this sentence?") + 4
    answer = answered(app, sent["assistant_message"]["id"])
    assert answer.token_count == tokens.count_text("ok") + 4
    context = answer.meta["context"]
    assert context["strategies"] == [] and context["encoding"] == "o200k_base"
    assert context["window"] == 8192 and context["budget"] == 8192 - 200 - 3


def test_a_long_conversation_is_truncated_within_its_window(app, client, user, recorder):
    conversation = new_conversation(client, model="recorder/r", system_prompt="be brief",
                                    settings={"context_window": 2000}, context_strategy="truncate")
    for turn in range(8):
        answer = answered(app, send(client, conversation, prose(turn))["assistant_message"]["id"])
    assert answer.status == "complete"
    prompt = Recorder.prompts[-1]
    budget = 2000 - 200 - 3
    assert prompt_tokens(prompt) <= budget
    assert prompt[0] == {"role": "system", "content": "be brief"}
    assert prompt[-1] == {"role": "user", "content": prose(7)}
    assert {"role": "user", "content": prose(0)} not in prompt
    context = answer.meta["context"]
    assert context["strategies"] == ["truncate"] and context["dropped"] > 0
    assert context["prompt_tokens"] <= context["budget"] + 3
    recorded = optimizations(app, "truncate")
    assert recorded and recorded[-1].details["message_id"] == str(answer.id)
    assert recorded[-1].output_tokens < recorded[-1].input_tokens


def test_summaries_are_made_reused_and_refreshed(app, client, user, recorder):
    conversation = new_conversation(client, model="recorder/r", settings={"context_window": 3000},
                                    context_strategy=["summarize"])
    turn = 0
    while not optimizations(app, "summarize") or not any(o.summary for o in optimizations(app, "summarize")):
        answered(app, send(client, conversation, prose(turn))["assistant_message"]["id"])
        turn += 1
        assert turn < 20, "no summary was ever made"
    made = [o for o in optimizations(app, "summarize") if o.summary]  # (in chunks, each folding the last)
    assert all(o.summary.startswith("SUMMARY of") for o in made)
    assert [o.details["previous_id"] for o in made[1:]] == [str(o.id) for o in made[:-1]]
    summary_in_prompt = [m for m in Recorder.prompts[-1] if "SUMMARY of" in str(m["content"])]
    assert summary_in_prompt and summary_in_prompt[0]["role"] == "system"

    # the next short turn fits with the same summary: reused, not made again
    answer = answered(app, send(client, conversation, "short question")["assistant_message"]["id"])
    assert len([o for o in optimizations(app, "summarize") if o.summary]) == len(made)
    assert answer.meta["context"]["summary_id"] == str(made[-1].id)

    # more long turns push more out of the window: a new summary folds in the old one
    for more in range(6):
        answered(app, send(client, conversation, prose(100 + more))["assistant_message"]["id"])
    summaries = [o for o in optimizations(app, "summarize") if o.summary]
    assert len(summaries) > len(made)
    assert summaries[-1].details["previous_id"] == str(summaries[-2].id)
    assert summaries[-1].details["covered"] > summaries[0].details["covered"]

    listed = client.get(f"{API}/conversations/{conversation}/messages?limit=200").get_json()
    assert [s["id"] for s in listed["context_summaries"]] == [str(s.id) for s in summaries]
    assert listed["context_summaries"][0]["summary"].startswith("SUMMARY of")


def _count_messages(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Message))


def test_a_message_that_can_never_fit_is_refused_before_anything_is_stored(app, client, user, recorder):
    conversation = new_conversation(client, model="recorder/r", settings={"context_window": 1024})
    before = _count_messages(app)
    huge = prose(1, words=1500)
    response = client.post(f"{API}/conversations/{conversation}/messages", {"content": huge})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "context_length_exceeded" and "1,024" not in error["message"]
    assert _count_messages(app) == before

    memory_bus(app)
    with SocketClient(app, user["id"]) as socket:
        frame = socket.ask({"type": "send", "conversation_id": conversation, "content": huge})
    assert (frame["type"], frame["code"]) == ("error", "context_length_exceeded")
    assert _count_messages(app) == before

    token = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    response = client.post("/v1/chat/completions", {
        "model": "recorder/r", "messages": [{"role": "user", "content": prose(2, words=12000)}]},
        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "context_length_exceeded"
    assert _count_messages(app) == before


def test_the_conversation_chooses_its_strategies(app, client, user, recorder):
    listed = client.get(f"{API}/context-strategies").get_json()
    assert {"truncate", "summarize", "compress"} <= {s["name"] for s in listed["strategies"]}
    assert listed["default"] == ["compress", "summarize", "truncate"]
    conversation = new_conversation(client)
    assert client.get(f"{API}/conversations/{conversation}").get_json()["context_strategy"] is None
    for bad in ("shrink", ["truncate", "shrink"], 7, [], {"a": 1}):
        response = client.patch(f"{API}/conversations/{conversation}", {"context_strategy": bad})
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["code"] == "invalid_field"
    changed = client.patch(f"{API}/conversations/{conversation}", {"context_strategy": "truncate"}).get_json()
    assert changed["context_strategy"] == ["truncate"]
    changed = client.patch(f"{API}/conversations/{conversation}", {"context_strategy": None}).get_json()
    assert changed["context_strategy"] is None


def test_v1_image_parts_reach_a_vision_model_and_are_stored_as_uploads(app, client, user, recorder):
    memory_bus(app)  # (a /v1 answer is awaited in this un-patched process: the memory bus delivers it)
    token = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    body = {"model": "recorder/eyes", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}
    response = client.post("/v1/chat/completions", body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    [question] = Recorder.prompts[-1]
    kinds = [part["type"] for part in question["content"]]
    assert kinds == ["text", "image_url", "image_url"]
    assert question["content"][1]["image_url"]["url"] == data_url
    assert question["content"][2]["image_url"]["url"] == "https://example.com/cat.png"
    uploads = client.get(f"{API}/uploads").get_json()["uploads"]
    assert [(u["mime"], u["size"]) for u in uploads] == [("image/png", len(PNG))]

    body["model"] = "recorder/r"  # no vision: a note instead of the image
    response = client.post("/v1/chat/completions", body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    [question] = Recorder.prompts[-1]
    assert isinstance(question["content"], str) and "does not accept images" in question["content"]
    assert len(client.get(f"{API}/uploads").get_json()["uploads"]) == 1  # the same bytes: stored once

    for bad in ("data:image/png;base64,!!!", "data:text/html;base64,PGI+", "ftp://x/y.png"):
        body["messages"][0]["content"][1]["image_url"]["url"] = bad
        response = client.post("/v1/chat/completions", body, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 400, bad


def test_an_attached_file_reaches_the_model_once(app, client, user, recorder):
    upload = client.post(f"{API}/uploads", data={"file": (__import__("io").BytesIO(b"The secret word is swordfish."),
                                                           "notes.txt")}, content_type="multipart/form-data")
    assert upload.status_code == 201, upload.get_json()
    upload_id = upload.get_json()["id"]
    conversation = new_conversation(client, model="recorder/r")
    answered(app, send(client, conversation, "read this", attachments=[upload_id])["assistant_message"]["id"])
    [question] = Recorder.prompts[-1]
    assert "The secret word is swordfish." in question["content"] and 'name="notes.txt"' in question["content"]
    answered(app, send(client, conversation, "again", attachments=[upload_id])["assistant_message"]["id"])
    texts = [m["content"] for m in Recorder.prompts[-1]]
    assert sum("swordfish" in text for text in texts) == 1 and "swordfish" in texts[-1]

    stranger = uuid.uuid4()
    response = client.post(f"{API}/conversations/{conversation}/messages",
                           {"content": "x", "attachments": [str(stranger)]})
    assert response.status_code == 404
