"""The OpenAI-compatible endpoint driven by the OFFICIAL ``openai`` SDK against real processes
(gunicorn + gevent; in production mode with a Celery worker, PostgreSQL and Redis).

Each mode starts its processes once for the module. Timeouts are safety bounds only.
"""

from __future__ import annotations

import json

import openai
import pytest
from bestchat_demo import reply_to

from bestchat.testing.fake_openai import FakeOpenAI, Script
from tests.integration.stack import wait_for

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is BestChat?"}]


@pytest.fixture(scope="module")
def sdk(stack, alice):
    """The official client, pointed at BestChat; no automatic retries (each would be a new chat)."""
    with openai.OpenAI(base_url=f"{stack.url()}/v1", api_key=alice.token, max_retries=0, timeout=30) as client:
        yield client


def test_models_are_listed(sdk):
    models = {model.id: model for model in sdk.models.list()}
    assert models["demo/demo"].owned_by == "demo" and models["demo/demo"].object == "model"
    assert sdk.models.retrieve("demo/demo").id == "demo/demo"


def test_a_completion_returns_the_models_reply_with_usage(sdk, alice):
    raw = sdk.chat.completions.with_raw_response.create(model="demo/demo", messages=MESSAGES)
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == reply_to(MESSAGES)
    assert choice.finish_reason == "stop" and completion.id.startswith("chatcmpl-")
    assert completion.usage.completion_tokens == len(reply_to(MESSAGES).split())
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    conversation_id = raw.headers["X-BestChat-Conversation-Id"]
    listed = {c["id"]: c for c in alice.api("GET", "/conversations").json()["conversations"]}
    assert listed[conversation_id]["title"] == "What is BestChat?"
    assert listed[conversation_id]["system_prompt"] == "You are terse."
    stored = alice.api("GET", f"/conversations/{conversation_id}/messages").json()["messages"]
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert f"chatcmpl-{stored[-1]['id']}" == completion.id


def test_streaming_concatenates_to_the_same_reply_with_a_usage_chunk(sdk):
    chunks = list(sdk.chat.completions.create(model="demo/demo", messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_to(MESSAGES)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(text.split())
    assert len({c.id for c in chunks}) == 1


def test_max_tokens_gives_finish_reason_length(sdk):
    completion = sdk.chat.completions.create(model="demo/demo", messages=MESSAGES, max_tokens=2)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == " ".join(reply_to(MESSAGES).split()[:2])


def test_a_bad_key_raises_authentication_error(stack):
    with openai.OpenAI(base_url=f"{stack.url()}/v1", api_key="bc_wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            client.chat.completions.create(model="demo/demo", messages=MESSAGES)
    assert refused.value.code == "invalid_token"


def test_an_unknown_model_raises_bad_request_and_stores_nothing(sdk, alice):
    before = len(alice.api("GET", "/conversations").json()["conversations"])
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="nope/nothing", messages=MESSAGES)
    assert refused.value.code == "unknown_model" and refused.value.param == "model"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="demo/demo", messages=MESSAGES, n=2)
    assert len(alice.api("GET", "/conversations").json()["conversations"]) == before


def test_leaving_a_stream_cancels_the_answer_and_the_server_keeps_serving(sdk, alice):
    long_question = [{"role": "user", "content": " ".join(f"word{i}" for i in range(400))}]  # ~8 s at 50 words/s
    raw = sdk.chat.completions.with_raw_response.create(model="demo/demo", messages=long_question, stream=True)
    conversation_id = raw.headers["X-BestChat-Conversation-Id"]
    stream = raw.parse()
    received = ""
    for chunk in stream:
        received += chunk.choices[0].delta.content or ""
        if received:
            break
    stream.close()

    def answer():
        message = alice.api("GET", f"/conversations/{conversation_id}/messages").json()["messages"][-1]
        return message["status"] not in ("pending", "queued", "streaming") and message

    stored = wait_for(answer, what="the abandoned answer to end")
    assert stored["status"] == "cancelled"
    assert stored["content"].startswith(received) and stored["content"] != reply_to(long_question)
    assert sdk.chat.completions.create(model="demo/demo", messages=MESSAGES).choices[0].message.content == reply_to(MESSAGES)


def test_an_agent_gets_tool_calls_and_sends_the_results_back(sdk, alice):
    """tools -> tool_calls (streamed and not) -> the client's results -> the model's answer, through
    the ``openai`` provider to a fake OpenAI server in this process."""
    tools = [{"type": "function", "function": {"name": "get_time", "description": "The time in a zone",
                                               "parameters": {"type": "object",
                                                              "properties": {"zone": {"type": "string"}}}}}]
    question = [{"role": "user", "content": "What time is it in Paris?"}]
    call = {"id": "call_1", "name": "get_time", "arguments": {"zone": "Europe/Paris"}}
    with FakeOpenAI() as upstream:
        created = alice.api("POST", "/providers", json={"provider": "openai", "api_key": "sk-fake-0123456789",
                                                         "base_url": upstream.url, "enabled_models": ["fake-model"]})
        assert created.status_code == 201, created.text
        try:
            upstream.enqueue(Script(content="", tool_calls=[call]), Script(content="It is noon."))
            choice = sdk.chat.completions.create(model="openai/fake-model", messages=question, tools=tools,
                                                 tool_choice="auto").choices[0]
            assert choice.finish_reason == "tool_calls" and choice.message.content is None
            (made,) = choice.message.tool_calls
            assert (made.id, made.function.name, json.loads(made.function.arguments)) == (
                "call_1", "get_time", {"zone": "Europe/Paris"})
            results = [{"role": "assistant", "content": None, "tool_calls": [made.model_dump()]},
                       {"role": "tool", "tool_call_id": made.id, "content": "12:00"}]
            answer = sdk.chat.completions.create(model="openai/fake-model", messages=question + results,
                                                 tools=tools)
            assert answer.choices[0].message.content == "It is noon."
            sent = upstream.requests[-1].body
            assert sent["tools"] == tools and sent["messages"][1:] == [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_time", "arguments": json.dumps({"zone": "Europe/Paris"})}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "12:00"}]

            upstream.enqueue(Script(content="Let me check.", tool_calls=[call]))
            chunks = list(sdk.chat.completions.create(model="openai/fake-model", messages=question, tools=tools,
                                                      stream=True))
            deltas = [c.choices[0].delta for c in chunks if c.choices]
            assert "".join(d.content or "" for d in deltas) == "Let me check."
            streamed = [t for d in deltas for t in d.tool_calls or ()]
            assert [(t.index, t.id, t.function.name) for t in streamed] == [(0, "call_1", "get_time")]
            assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
        finally:
            alice.api("DELETE", f"/providers/{created.json()['id']}")
