"""The OpenAI-compatible endpoint driven by the OFFICIAL ``openai`` SDK against real processes
(gunicorn + gevent; in production mode with a Celery worker, PostgreSQL and Redis).

Each mode starts its processes once for the module. Timeouts are safety bounds only.
"""

from __future__ import annotations


import openai
import pytest
from bestchat_demo import reply_to

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
