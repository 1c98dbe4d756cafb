"""The OpenAI-compatible API (``/v1``): Bearer-only auth, OpenAI error shapes, the model list,
chat completions through the chat pipeline (streamed and not), failures and disconnects; jobs
run in-process on both backends (tests/integration/test_openai_compat.py drives a real server
with the official SDK)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import Conversation, Message, User
from bestchat.providers.base import ProviderAuthError, ProviderRateLimited
from bestchat.services import accounts
from bestchat.streaming import sse
from bestchat.streaming.memory_bus import MemoryBus
from bestchat_demo import reply_to
from tests.chat_fakes import GatedProvider, app_config, gated, jobs, wait_for  # noqa: F401

V1 = "/v1"
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def api(client, user):
    """A client with no session, holding the user's API token."""
    token = client.post("/api/v1/tokens", {"name": "sdk"}).get_json()["token"]
    bearer = client.new()
    bearer.bearer = token
    return bearer


@pytest.fixture
def live_bus(app, backend):
    """Live delivery for completions run in the test process. On the production backend the
    Redis bus's reader would block this un-monkey-patched process, so the in-memory bus stands in
    (PostgreSQL stays); the integration tests run the Redis bus in real gevent servers."""
    if backend == "production":
        app.extensions["bestchat_bus"] = MemoryBus(maxlen=app.config["STREAM_MAXLEN"], ttl=app.config["STREAM_TTL"])


def openai_error(response, status: int, code: str | None = None, param: str | None = None) -> dict:
    """The response is OpenAI's error shape (ours plus ``type`` and ``param``)."""
    assert response.status_code == status, (response.status_code, response.data[:300])
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code, error
    return error


def conversations(app) -> list[Conversation]:
    with app.app_context():
        rows = list(db.session.scalars(select(Conversation)))
        for row in rows:
            db.session.expunge(row)
        return rows


def transcript(app, conversation_id: str) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.session.scalars(select(Message).where(Message.conversation_id == uuid.UUID(conversation_id))
                                  .order_by(Message.created_at))
        return [(m.role, m.content, m.status) for m in rows]


def sse_payloads(response) -> list:
    """The ``data:`` payloads of an SSE body, JSON-decoded (``[DONE]`` kept as the string)."""
    payloads = []
    for block in response.get_data(as_text=True).split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                raw = line[len("data: "):]
                payloads.append(raw if raw == "[DONE]" else json.loads(raw))
    return payloads


# ---- auth -----------------------------------------------------------------------------------

def test_requests_need_a_valid_bearer_token(app, client, user, api):
    assert openai_error(client.new().get(f"{V1}/models"), 401, "missing_api_key")["type"] == "authentication_error"
    assert openai_error(client.get(f"{V1}/models"), 401, "missing_api_key")  # a session cookie is not enough
    wrong = client.new()
    wrong.bearer = "bc_not-a-token"
    assert openai_error(wrong.post(f"{V1}/chat/completions", {"model": "demo/demo", "messages": HELLO}),
                        401, "invalid_token")["type"] == "authentication_error"
    assert openai_error(client.new().get(f"{V1}/models", headers={"Authorization": "Basic x"}), 401, "invalid_token")
    assert api.get(f"{V1}/models").status_code == 200
    token_id = client.get("/api/v1/tokens").get_json()["tokens"][0]["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    openai_error(api.get(f"{V1}/models"), 401, "invalid_token")
    assert conversations(app) == []


def test_a_disabled_users_token_is_forbidden(app, api):
    with app.app_context():
        accounts.set_disabled(None, db.session.scalar(select(User)), True)
    error = openai_error(api.post(f"{V1}/chat/completions", {"model": "demo/demo", "messages": HELLO}),
                         403, "account_disabled")
    assert error["type"] == "permission_error"


# ---- models ---------------------------------------------------------------------------------

def test_models_are_listed_and_found_by_id(api):
    listing = api.get(f"{V1}/models").get_json()
    assert listing["object"] == "list"
    demo = next(m for m in listing["data"] if m["id"] == "demo/demo")
    assert demo == {"id": "demo/demo", "object": "model", "created": 0, "owned_by": "demo"}
    assert api.get(f"{V1}/models/demo/demo").get_json() == demo
    error = openai_error(api.get(f"{V1}/models/nope/none"), 404, "model_not_found")
    assert error["type"] == "invalid_request_error"


# ---- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("body, code, param", [
    ({"messages": HELLO}, "missing_field", "model"),
    ({"model": "nope/none", "messages": HELLO}, "unknown_model", "model"),
    ({"model": "demo/demo"}, "missing_field", "messages"),
    ({"model": "demo/demo", "messages": []}, "invalid_field", "messages"),
    ({"model": "demo/demo", "messages": ["hi"]}, "invalid_field", "messages[0]"),
    ({"model": "demo/demo", "messages": [{"role": "function", "content": "x"}]}, "invalid_field", "messages[0].role"),
    ({"model": "demo/demo", "messages": [{"role": "user", "content": None}]}, "invalid_field", "messages[0].content"),
    ({"model": "demo/demo", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}, "unsupported", "messages[0].content"),
    ({"model": "demo/demo", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, "invalid_field",
     "messages[0].content[0].image_url.url"),
    ({"model": "demo/demo", "messages": [{"role": "assistant", "content": None,
                                          "function_call": {"name": "f", "arguments": "{}"}}, *HELLO]},
     "unsupported", "messages[0].function_call"),
    ({"model": "demo/demo", "messages": [*HELLO, {"role": "assistant", "content": "hi"}]}, "invalid_field", "messages"),
    ({"model": "demo/demo", "messages": [{"role": "system", "content": "only a system prompt"}]},
     "invalid_field", "messages"),
    ({"model": "demo/demo", "messages": [{"role": "user", "content": "   "}]}, "missing_field", None),
    ({"model": "demo/demo", "messages": HELLO, "n": 2}, "unsupported", "n"),
    ({"model": "demo/demo", "messages": HELLO, "functions": [{"name": "f"}]}, "unsupported", "functions"),
    ({"model": "demo/demo", "messages": HELLO, "logprobs": True}, "unsupported", "logprobs"),
    ({"model": "demo/demo", "messages": HELLO, "temperature": 3}, "invalid_field", "temperature"),
    ({"model": "demo/demo", "messages": HELLO, "top_p": "high"}, "invalid_field", "top_p"),
    ({"model": "demo/demo", "messages": HELLO, "max_tokens": 0}, "invalid_field", "max_tokens"),
    ({"model": "demo/demo", "messages": HELLO, "max_completion_tokens": 1.5}, "invalid_field", "max_completion_tokens"),
    ({"model": "demo/demo", "messages": HELLO, "stream": "yes"}, "invalid_field", "stream"),
    ({"model": "demo/demo", "messages": HELLO, "stream": True, "stream_options": {"include_usage": 1}},
     "invalid_field", "stream_options.include_usage"),
])
def test_bad_requests_are_400_and_store_nothing(app, api, body, code, param):
    error = openai_error(api.post(f"{V1}/chat/completions", body), 400, code, param)
    assert error["type"] == "invalid_request_error"
    assert conversations(app) == []


def test_a_body_that_is_not_json_is_400(app, api):
    response = api.post(f"{V1}/chat/completions", data="{not json", headers={"Content-Type": "application/json"})
    openai_error(response, 400, "invalid_json")


def test_a_body_over_the_size_limit_is_413_in_openai_shape(app, api):
    app.config["OPENAI_MAX_BODY_BYTES"] = 100  # (/v1's own limit: it may carry images)
    response = api.post(f"{V1}/chat/completions", {"model": "demo/demo", "messages": [
        {"role": "user", "content": "x" * 200}]})
    assert openai_error(response, 413, "request_entity_too_large")["type"] == "invalid_request_error"
    assert conversations(app) == []


def test_a_provider_needing_a_key_the_user_lacks_is_400(app, api):
    response = api.post(f"{V1}/chat/completions", {"model": "openai/gpt-4o-mini", "messages": HELLO})
    assert "needs an API key" in openai_error(response, 400, "provider_key_missing")["message"]
    assert response.headers["x-should-retry"] == "false"
    assert conversations(app) == []


# ---- completions ----------------------------------------------------------------------------

def test_a_completion_runs_through_the_chat_pipeline_and_is_stored(app, api, jobs, live_bus):
    messages = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
    ]
    response = api.post(f"{V1}/chat/completions", {"model": "demo/demo", "messages": messages,
                                                  "temperature": 0.5, "user": "end-user-1", "seed": 7})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    answer = body["choices"][0]["message"]["content"]
    assert answer == reply_to([{"role": "user", "content": "second\nquestion"}])
    assert body["object"] == "chat.completion" and body["model"] == "demo/demo"
    assert body["choices"][0]["finish_reason"] == "stop" and body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    assert usage["completion_tokens"] == len(answer.split()) and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    (conversation,) = conversations(app)
    assert response.headers["X-BestChat-Conversation-Id"] == str(conversation.id)
    assert conversation.title == "first question"
    assert conversation.system_prompt == "Be kind.\n\nBe brief."
    assert conversation.settings == {"temperature": 0.5, "created_via": "openai_api"}
    assert transcript(app, str(conversation.id)) == [
        ("user", "first question", "complete"), ("assistant", "first answer", "complete"),
        ("user", "second\nquestion", "complete"), ("assistant", answer, "complete")]
    with app.app_context():
        stored = db.session.scalar(select(Message).where(Message.content == answer))
        assert body["id"] == f"chatcmpl-{stored.id}"


def test_max_tokens_cuts_the_answer_with_finish_reason_length(api, jobs, live_bus):
    body = api.post(f"{V1}/chat/completions", {"model": "demo/demo", "messages": HELLO,
                                               "max_completion_tokens": 3}).get_json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == " ".join(reply_to(HELLO).split()[:3])
    assert body["usage"]["completion_tokens"] == 3


def test_streaming_sends_openai_chunks_usage_and_done(app, api, jobs, live_bus):
    response = api.post(f"{V1}/chat/completions", {"model": "demo/demo", "messages": HELLO, "stream": True,
                                                  "stream_options": {"include_usage": True}})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    (conversation,) = conversations(app)
    assert response.headers["X-BestChat-Conversation-Id"] == str(conversation.id)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "demo/demo" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    *content, final, usage = chunks[1:]
    # (this unpatched test process receives the demo answer as one frame; the integration
    # tests stream it in many through real servers)
    assert content and all(c["usage"] is None and c["choices"][0]["finish_reason"] is None for c in content)
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    assert text == reply_to(HELLO)
    assert final["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == len(text.split())
    assert transcript(app, str(conversation.id))[-1] == ("assistant", text, "complete")


def test_streaming_without_usage_has_no_usage_chunk(api, jobs, live_bus):
    payloads = sse_payloads(api.post(f"{V1}/chat/completions",
                                     {"model": "demo/demo", "messages": HELLO, "stream": True}))
    assert payloads[-1] == "[DONE]" and payloads[-2]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in p for p in payloads[:-1])


def test_the_provider_gets_the_system_prompt_and_the_history(api, gated, live_bus):
    GatedProvider.feed.put("ok")
    GatedProvider.feed.put(None)
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
                {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    body = api.post(f"{V1}/chat/completions", {"model": "gated/g", "messages": messages}).get_json()
    assert body["choices"][0]["message"]["content"] == "ok"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert GatedProvider.prompts == [messages + [{"role": "system", "content": "filtered"}]]


@pytest.mark.parametrize("error, status, code, kind, retry", [
    (ProviderAuthError("the provider rejected the API key", status=401), 502, "provider_auth", "server_error", "false"),
    (ProviderRateLimited("slow down", status=429), 429, "provider_rate_limited", "rate_limit_error", "true"),
    (RuntimeError("secret internals sk-123"), 502, "provider_failed", "server_error", "false"),
])
def test_a_failed_generation_answers_with_the_mapped_error(app, api, gated, error, status, code, kind, retry, live_bus):
    GatedProvider.feed.put(error)
    response = api.post(f"{V1}/chat/completions", {"model": "gated/g", "messages": HELLO})
    body = openai_error(response, status, code)
    assert body["type"] == kind and "sk-123" not in body["message"]
    assert response.headers["x-should-retry"] == retry
    (conversation,) = conversations(app)
    assert transcript(app, str(conversation.id))[-1][2] == "failed"


def test_a_failure_mid_stream_ends_with_an_error_line(api, gated, live_bus):
    GatedProvider.feed.put("so far")
    GatedProvider.feed.put(ProviderAuthError("the provider rejected the API key", status=401))
    payloads = sse_payloads(api.post(f"{V1}/chat/completions",
                                     {"model": "gated/g", "messages": HELLO, "stream": True}))
    assert [p["choices"][0]["delta"] for p in payloads[:2]] == [{"role": "assistant", "content": ""},
                                                               {"content": "so far"}]
    assert payloads[2:] == [{"error": {"message": "the provider rejected the API key", "type": "server_error",
                                       "code": "provider_auth", "param": None}}]


def test_an_idle_stream_gets_keep_alive_lines_between_its_chunks(app, api, gated, live_bus, monkeypatch):
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.01)
    response = api.http.post(f"{V1}/chat/completions", buffered=False,
                             json={"model": "gated/g", "messages": HELLO, "stream": True},
                             headers={"Authorization": f"Bearer {api.bearer}"})
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    blocks = (block.decode() for block in response.iter_encoded())
    assert json.loads(next(blocks).removeprefix("data: "))["choices"][0]["delta"] == {"role": "assistant",
                                                                                     "content": ""}
    assert next(blocks) == ": keep-alive\n\n"  # the provider has said nothing yet
    GatedProvider.feed.put("hi")
    GatedProvider.feed.put(None)
    # (the events queued together arrive in one piece: split it into events)
    rest = [event for event in "".join(blocks).split("\n\n") if event and event != ": keep-alive"]
    response.close()
    payloads = [event.removeprefix("data: ").strip() for event in rest]
    assert payloads[-1] == "[DONE]"
    assert [json.loads(p)["choices"][0]["delta"] for p in payloads[:-1]] == [{"content": "hi"}, {}]


def test_a_client_leaving_mid_stream_cancels_the_answer(app, api, gated, live_bus):
    GatedProvider.feed.put("partial")
    response = api.http.post(f"{V1}/chat/completions", buffered=False,
                             json={"model": "gated/g", "messages": HELLO, "stream": True},
                             headers={"Authorization": f"Bearer {api.bearer}"})
    lines = response.iter_encoded()
    received = ""
    while "partial" not in received:
        received += next(lines).decode()
    response.close()  # the client disconnects
    (conversation,) = conversations(app)

    def ended():
        role, content, status = transcript(app, str(conversation.id))[-1]
        return status not in ("pending", "queued", "streaming") and (status, content)

    assert wait_for(ended) == ("cancelled", "partial")
