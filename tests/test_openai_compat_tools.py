"""``/v1`` speaks tools the OpenAI way: a client's ``tools`` and ``tool_choice`` reach the model,
its ``tool_calls`` come back (the client runs them; the server runs nothing), and the client's
next request with the calls and their ``tool`` results reaches the model in OpenAI's shape.

Through the real ``openai`` and ``litellm`` providers over HTTP against the fake OpenAI
server, streamed and not, and with the official ``openai`` SDK (over a WSGI transport into the
test app); jobs run in-process on both backends."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import Message, User
from bestchat.services import provider_configs
from bestchat.store.claimed import BranchEntry, branch
from tests.chat_fakes import branch_messages
from bestchat.testing.fake_openai import Script
from tests.chat_fakes import app_config, jobs  # noqa: F401
from tests.test_openai_compat import V1, api, conversations, live_bus, openai_error, sse_payloads  # noqa: F401

# litellm reads pydantic attributes the deprecated way; that is litellm's business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning")

KEY = "sk-tools-0123456789"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
TOOLS = [WEATHER, TIME]
CALLS = [{"id": "call_w", "name": "get_weather", "arguments": {"city": "Paris, France"}},
         {"id": "call_t", "name": "get_time", "arguments": {}}]
QUESTION = [{"role": "user", "content": "Weather and time in Paris?"}]
# The calls as OpenAI returns them (and as the client sends them back).
OPENAI_CALLS = [{"id": "call_w", "type": "function",
                 "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris, France"})}},
                {"id": "call_t", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
RESULTS = [{"role": "tool", "tool_call_id": "call_w", "content": "sunny, 21 C"},
           {"role": "tool", "tool_call_id": "call_t", "content": [{"type": "text", "text": "12:00"}]}]
# (provider, model id, the model name the upstream receives)
PROVIDERS = [("openai", "openai/gpt-4o-mini", "gpt-4o-mini"),
             ("litellm", "litellm/openai/gpt-4o-mini", "gpt-4o-mini")]


@pytest.fixture(params=PROVIDERS, ids=[p[0] for p in PROVIDERS])
def upstream(request, app, api, fake_openai):
    """The token's user has a config of the provider pointing at the fake OpenAI server; the
    model id to ask for."""
    provider, model_id, _ = request.param
    with app.app_context():
        owner = db.session.scalar(select(User))
        provider_configs.create_config(owner, {"scope": "user", "provider": provider, "api_key": KEY,
                                               "base_url": fake_openai.url,
                                               "enabled_models": [model_id.partition("/")[2]]})
    return model_id


def stored(app) -> list[tuple[str, str, list]]:
    """The one conversation's messages: (role, content, parts), oldest first."""
    (conversation,) = conversations(app)
    with app.app_context():
        rows = db.session.scalars(select(Message).where(Message.conversation_id == conversation.id)
                                  .order_by(Message.created_at))
        return [(m.role, m.content, m.parts) for m in rows]


# ---- requests that are refused ----------------------------------------------------------------

def _with(**fields):
    return {"model": "demo/demo", "messages": QUESTION, **fields}


def _after_calls(*results, calls=OPENAI_CALLS, content=None):
    return _with(messages=[*QUESTION, {"role": "assistant", "content": content, "tool_calls": calls}, *results])


LONG = "x" * 65


@pytest.mark.parametrize("body, code, param", [
    (_with(tools={"type": "function"}), "invalid_field", "tools"),
    (_with(tools=[WEATHER] * 129), "invalid_field", "tools"),
    (_with(tools=["get_weather"]), "invalid_field", "tools[0]"),
    (_with(tools=[{"type": "code_interpreter"}]), "invalid_field", "tools[0].type"),
    (_with(tools=[{"function": WEATHER["function"]}]), "missing_field", "tools[0].type"),
    (_with(tools=[{"type": "function"}]), "missing_field", "tools[0].function"),
    (_with(tools=[{"type": "function", "function": {"description": "no name"}}]), "missing_field",
     "tools[0].function.name"),
    (_with(tools=[{"type": "function", "function": {"name": "has space"}}]), "invalid_field", "tools[0].function.name"),
    (_with(tools=[{"type": "function", "function": {"name": LONG}}]), "invalid_field", "tools[0].function.name"),
    (_with(tools=[WEATHER, WEATHER]), "invalid_field", "tools[1].function.name"),
    (_with(tools=[{"type": "function", "function": {"name": "f", "description": 3}}]), "invalid_field",
     "tools[0].function.description"),
    (_with(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]), "invalid_field",
     "tools[0].function.parameters"),
    (_with(tools=[{"type": "function", "function": {"name": "f", "parameters": {"d": "x" * 70_000}}}]),
     "invalid_field", "tools[0].function.parameters"),
    (_with(tools=[{"type": "function", "function": {"name": "f", "strict": "yes"}}]), "invalid_field",
     "tools[0].function.strict"),
    (_with(tools=TOOLS, tool_choice="sometimes"), "invalid_field", "tool_choice"),
    (_with(tools=TOOLS, tool_choice={"type": "function"}), "invalid_field", "tool_choice"),
    (_with(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}), "invalid_field",
     "tool_choice.function.name"),
    (_with(tool_choice="required"), "invalid_field", "tool_choice"),
    (_with(tool_choice={"type": "function", "function": {"name": "get_time"}}), "invalid_field",
     "tool_choice.function.name"),
    (_with(tools=TOOLS, parallel_tool_calls="yes"), "invalid_field", "parallel_tool_calls"),
    (_with(functions=[WEATHER["function"]]), "unsupported", "functions"),
    (_with(function_call="auto"), "unsupported", "function_call"),
    # assistant tool calls
    (_after_calls(*RESULTS, calls={"id": "x"}), "invalid_field", "messages[1].tool_calls"),
    (_after_calls(*RESULTS, calls=["call_w"]), "invalid_field", "messages[1].tool_calls[0]"),
    (_after_calls(calls=[{"type": "function", "function": {"name": "f", "arguments": "{}"}}]), "missing_field",
     "messages[1].tool_calls[0].id"),
    (_after_calls(calls=[{"id": "c", "type": "web", "function": {"name": "f", "arguments": "{}"}}]),
     "invalid_field", "messages[1].tool_calls[0].type"),
    (_after_calls(calls=[{"id": "c", "type": "function"}]), "missing_field", "messages[1].tool_calls[0].function"),
    (_after_calls(calls=[{"id": "c", "function": {"name": "no way", "arguments": "{}"}}]), "invalid_field",
     "messages[1].tool_calls[0].function.name"),
    (_after_calls(calls=[{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}]), "invalid_field",
     "messages[1].tool_calls[0].function.arguments"),
    (_after_calls(calls=[OPENAI_CALLS[0], OPENAI_CALLS[0]]), "invalid_field", "messages[1].tool_calls[1].id"),
    (_after_calls(RESULTS[0]), "invalid_field", "messages[1].tool_calls"),  # call_t unanswered
    (_after_calls(*RESULTS, content=7), "invalid_field", "messages[1].content"),
    # tool messages
    (_after_calls({"role": "tool", "content": "x"}, RESULTS[1]), "missing_field", "messages[2].tool_call_id"),
    (_after_calls({"role": "tool", "tool_call_id": 5, "content": "x"}), "invalid_field", "messages[2].tool_call_id"),
    (_after_calls(*RESULTS, {"role": "tool", "tool_call_id": "call_w", "content": "again"}), "invalid_field",
     "messages[4].tool_call_id"),
    (_after_calls({"role": "tool", "tool_call_id": "call_x", "content": "x"}), "invalid_field",
     "messages[2].tool_call_id"),
    (_after_calls(RESULTS[0], {"role": "tool", "tool_call_id": "call_t", "content": None}), "invalid_field",
     "messages[3].content"),
    (_after_calls(RESULTS[0], {"role": "tool", "tool_call_id": "call_t", "content": [{"type": "image_url"}]}),
     "unsupported", "messages[3].content"),
    (_with(messages=[{"role": "tool", "tool_call_id": "call_w", "content": "x"}]), "invalid_field",
     "messages[0].tool_call_id"),
    (_with(messages=[*QUESTION, {"role": "assistant", "content": None, "tool_calls": OPENAI_CALLS}]),
     "invalid_field", "messages[1].tool_calls"),
])
def test_malformed_tools_and_tool_messages_are_400_and_store_nothing(app, api, body, code, param):
    error = openai_error(api.post(f"{V1}/chat/completions", body), 400, code, param)
    assert error["type"] == "invalid_request_error"
    assert conversations(app) == []


# ---- tools in, tool calls out -----------------------------------------------------------------

def test_tool_calls_come_back_with_finish_reason_tool_calls(app, api, jobs, live_bus, upstream, fake_openai):
    fake_openai.enqueue(Script(content="", tool_calls=CALLS))
    response = api.post(f"{V1}/chat/completions", {"model": upstream, "messages": QUESTION, "tools": TOOLS,
                                                  "tool_choice": "auto", "parallel_tool_calls": True})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {"role": "assistant", "content": None, "refusal": None, "tool_calls": OPENAI_CALLS}
    sent = fake_openai.requests[-1].body
    assert (sent["tools"], sent["tool_choice"], sent["messages"]) == (TOOLS, "auto", QUESTION)
    # The answer is stored complete with what was offered and what was called; nothing ran.
    (*_, (role, content, parts)) = stored(app)
    assert (role, content) == ("assistant", "")
    assert parts == [{"type": "client_tools", "tools": TOOLS, "tool_choice": "auto"},
                     {"type": "tool_calls", "tool_calls": OPENAI_CALLS}]


def test_text_before_the_calls_is_the_content_and_a_named_choice_is_passed(api, jobs, live_bus, upstream,
                                                                           fake_openai):
    fake_openai.enqueue(Script(content="Let me look.", tool_calls=CALLS[:1]))
    choice = {"type": "function", "function": {"name": "get_weather"}}
    body = api.post(f"{V1}/chat/completions", {"model": upstream, "messages": QUESTION, "tools": TOOLS,
                                               "tool_choice": choice}).get_json()
    message = body["choices"][0]["message"]
    assert (message["content"], message["tool_calls"]) == ("Let me look.", OPENAI_CALLS[:1])
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert fake_openai.requests[-1].body["tool_choice"] == choice


def test_without_tools_nothing_about_tools_is_sent(api, jobs, live_bus, upstream, fake_openai):
    fake_openai.enqueue(Script(content="Just text."))
    body = api.post(f"{V1}/chat/completions", {"model": upstream, "messages": QUESTION,
                                               "tool_choice": "none"}).get_json()
    assert body["choices"][0] == {"index": 0, "logprobs": None, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Just text.", "refusal": None}}
    assert "tools" not in fake_openai.requests[-1].body and "tool_choice" not in fake_openai.requests[-1].body


def test_streamed_tool_calls_follow_the_text(app, api, jobs, live_bus, upstream, fake_openai):
    fake_openai.enqueue(Script(content="Checking now.", tool_calls=CALLS))
    payloads = sse_payloads(api.post(f"{V1}/chat/completions", {
        "model": upstream, "messages": QUESTION, "tools": TOOLS, "stream": True,
        "stream_options": {"include_usage": True}}))
    assert payloads[-1] == "[DONE]"
    *chunks, usage = payloads[:-1]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == "Checking now."
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert calls == [[{"index": 0, **OPENAI_CALLS[0]}], [{"index": 1, **OPENAI_CALLS[1]}]]
    assert deltas.index({"tool_calls": calls[0]}) > max(i for i, d in enumerate(deltas) if d.get("content"))
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "tool_calls"
    assert deltas[-1] == {} and all(c["usage"] is None for c in chunks)
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    assert stored(app)[-1][2][-1] == {"type": "tool_calls", "tool_calls": OPENAI_CALLS}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_agent_loop_sends_the_calls_and_results_back_to_the_model(app, api, jobs, live_bus, upstream,
                                                                      fake_openai, stream):
    """tools -> tool_calls; the client runs them and calls again with the assistant message and
    the results -> the model gets them in OpenAI's shape and answers."""
    fake_openai.enqueue(Script(content="", tool_calls=CALLS), Script(content="Sunny, 21 C, at noon."))
    request = {"model": upstream, "messages": QUESTION, "tools": TOOLS, "tool_choice": "required", "stream": stream}

    def complete(messages):
        response = api.post(f"{V1}/chat/completions", {**request, "messages": messages})
        assert response.status_code == 200, response.data[:300]
        if not stream:
            return response.get_json()["choices"][0]
        payloads = [p for p in sse_payloads(response) if p != "[DONE]"]
        deltas = [p["choices"][0]["delta"] for p in payloads]
        calls = [call for d in deltas for call in d.get("tool_calls", [])]
        content = "".join(d.get("content") or "" for d in deltas)
        message = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in call.items() if k != "index"} for call in calls]
        return {"message": message, "finish_reason": payloads[-1]["choices"][0]["finish_reason"]}

    first = complete(QUESTION)
    assert first["finish_reason"] == "tool_calls"
    assistant = {"role": "assistant", "content": first["message"]["content"],
                 "tool_calls": first["message"]["tool_calls"]}
    assert assistant == {"role": "assistant", "content": None, "tool_calls": OPENAI_CALLS}
    second = complete([*QUESTION, assistant, *RESULTS])
    assert second["finish_reason"] == "stop"
    assert second["message"]["content"] == "Sunny, 21 C, at noon." and "tool_calls" not in second["message"]

    sent = fake_openai.requests[-1].body
    assert (sent["tools"], sent["tool_choice"]) == (TOOLS, "required")
    as_sent = [{k: v for k, v in m.items() if v is not None} for m in sent["messages"]]  # (litellm drops nulls)
    assert as_sent == [*QUESTION, {"role": "assistant", "tool_calls": OPENAI_CALLS},
                       {"role": "tool", "tool_call_id": "call_w", "content": "sunny, 21 C"},
                       {"role": "tool", "tool_call_id": "call_t", "content": "12:00"}]
    second_conversation = max(conversations(app), key=lambda c: c.created_at)
    with app.app_context():
        rows = list(db.session.scalars(select(Message).where(Message.conversation_id == second_conversation.id)
                                       .order_by(Message.created_at)))
        assert [(m.role, m.status) for m in rows] == [("user", "complete"), ("assistant", "complete"),
                                                     ("tool", "complete"), ("tool", "complete"),
                                                     ("assistant", "complete")]
        assert rows[1].parts == [{"type": "tool_calls", "tool_calls": OPENAI_CALLS}]
        assert rows[2].parts == [{"type": "tool_result", "tool_call_id": "call_w"}]
        assert rows[-1].content == "Sunny, 21 C, at noon."


# ---- the official SDK -------------------------------------------------------------------------

@pytest.fixture
def sdk(app, api):
    """The official ``openai`` client, talking to the test app through a WSGI transport."""
    transport = httpx.WSGITransport(app=app)
    with openai.OpenAI(base_url="http://testserver/v1", api_key=api.bearer, max_retries=0,
                       http_client=httpx.Client(transport=transport)) as client:
        yield client


@pytest.mark.parametrize("upstream", [PROVIDERS[0]], ids=["openai"], indirect=True)
def test_an_sdk_agent_runs_its_tools_through_v1(app, sdk, jobs, live_bus, upstream, fake_openai):
    fake_openai.enqueue(Script(content="", tool_calls=CALLS), Script(content="Sunny at noon."),
                        Script(content="", tool_calls=CALLS[1:]), Script(content="It is noon."))
    local = {"get_weather": lambda city: f"sunny in {city}", "get_time": lambda: "12:00"}

    def run_agent(stream: bool) -> str:
        messages: list = list(QUESTION)
        for _ in range(3):
            if stream:
                content, calls, finish = "", {}, None
                for chunk in sdk.chat.completions.create(model=upstream, messages=messages, tools=TOOLS,
                                                         stream=True):
                    delta = chunk.choices[0].delta
                    content += delta.content or ""
                    for call in delta.tool_calls or ():
                        calls[call.index] = call
                    finish = chunk.choices[0].finish_reason or finish
                tool_calls = [calls[index] for index in sorted(calls)]
            else:
                choice = sdk.chat.completions.create(model=upstream, messages=messages, tools=TOOLS).choices[0]
                content, tool_calls, finish = choice.message.content, choice.message.tool_calls or [], \
                    choice.finish_reason
            if finish != "tool_calls":
                return content
            messages.append({"role": "assistant", "content": content or None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.function.name,
                                                              "arguments": c.function.arguments}}
                for c in tool_calls]})
            for call in tool_calls:
                result = local[call.function.name](**json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        raise AssertionError("the agent did not finish")

    assert run_agent(stream=False) == "Sunny at noon."
    tool_messages = [m for m in fake_openai.requests[-1].body["messages"] if m["role"] == "tool"]
    assert tool_messages == [{"role": "tool", "tool_call_id": "call_w", "content": "sunny in Paris, France"},
                             {"role": "tool", "tool_call_id": "call_t", "content": "12:00"}]
    assert run_agent(stream=True) == "It is noon."
    assert fake_openai.requests[-1].body["messages"][-1] == {"role": "tool", "tool_call_id": "call_t",
                                                             "content": "12:00"}


# ---- the history given to the model -----------------------------------------------------------

def test_history_keeps_answered_calls_and_drops_unanswered_ones():
    """Calls a tool message answers go to the model with it; an answer that ended with calls
    for a client, continued as a chat, goes as its text alone (or not at all when empty)."""
    ids = [uuid.uuid4() for _ in range(7)]
    called = [{"type": "tool_calls", "tool_calls": OPENAI_CALLS[1:]}]
    unanswered = [{"type": "tool_calls", "tool_calls": OPENAI_CALLS[:1]}]
    entries = [
        BranchEntry(ids[0], None, "user", "complete", "time?", []),
        BranchEntry(ids[1], ids[0], "assistant", "complete", "", called),
        BranchEntry(ids[2], ids[1], "tool", "complete", "12:00", [{"type": "tool_result", "tool_call_id": "call_t"}]),
        BranchEntry(ids[3], ids[2], "assistant", "complete", "", unanswered),
        BranchEntry(ids[4], ids[3], "user", "complete", "and the weather?", []),
        BranchEntry(ids[5], ids[4], "assistant", "complete", "Let me look.", unanswered),
        BranchEntry(ids[6], ids[5], "user", "complete", "well?", []),
    ]
    assert branch_messages(branch(entries, ids[6])) == [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": None, "tool_calls": OPENAI_CALLS[1:]},
        {"role": "tool", "tool_call_id": "call_t", "content": "12:00"},
        {"role": "user", "content": "and the weather?"},
        {"role": "assistant", "content": "Let me look."},
        {"role": "user", "content": "well?"}]
