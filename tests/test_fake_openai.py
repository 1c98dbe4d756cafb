"""The fake OpenAI-compatible server: the official SDK understands it, scripts and faults work."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from bestchat.testing.fake_openai import FakeOpenAI, Script

USER = [{"role": "user", "content": "Say hello to me"}]


@pytest.fixture
def sdk(fake_openai):
    return openai.OpenAI(base_url=fake_openai.url, api_key="sk-test", max_retries=0, timeout=10)


def test_streams_the_script_with_usage_through_the_official_sdk(fake_openai, sdk):
    fake_openai.script = Script(content="Hello there, friend.")
    chunks = list(sdk.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there, friend." == fake_openai.script.text()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 3)


def test_no_usage_chunk_unless_asked(sdk):
    chunks = list(sdk.chat.completions.create(model="m?tokens=2", messages=USER, stream=True))
    assert all(c.usage is None and c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "tok0 tok1 "


def test_streamed_tool_calls_reassemble_in_the_sdk(fake_openai, sdk):
    call = {"name": "get_weather", "arguments": {"city": "Paris, France", "unit": "celsius"}}
    fake_openai.enqueue(Script(content="", tool_calls=[call]))
    chunks = list(sdk.chat.completions.create(model="m", messages=USER, stream=True))
    fragments = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or ()]
    assert len(fragments) > 2  # the arguments really arrive in pieces
    assert fragments[0].id == "call_0" and fragments[0].function.name == "get_weather"
    assert "".join(f.function.arguments for f in fragments) == '{"city": "Paris, France", "unit": "celsius"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_non_streaming_answer(fake_openai, sdk):
    fake_openai.enqueue(Script(content="Sure.", tool_calls=[{"name": "now", "arguments": {}}]))
    answer = sdk.chat.completions.create(model="m", messages=USER)
    assert answer.choices[0].message.content == "Sure."
    assert answer.choices[0].message.tool_calls[0].function.name == "now"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 1)


def test_lists_models(sdk):
    assert [m.id for m in sdk.models.list()] == ["gpt-4o-mini", "fake-model"]


def test_queued_scripts_then_the_default_then_model_overrides(fake_openai, sdk):
    fake_openai.enqueue(Script(content="first"), Script(content="second"))

    def ask(model="m"):
        return sdk.chat.completions.create(model=model, messages=USER).choices[0].message.content

    assert [ask(), ask(), ask(), ask("m?content=over%20ride")] == ["first", "second", Script().text(), "over ride"]


def test_unknown_script_field_is_a_400(sdk):
    with pytest.raises(openai.BadRequestError, match="unknown script field 'speed'"):
        sdk.chat.completions.create(model="m?speed=2", messages=USER)


def test_records_requests_with_headers_and_body(fake_openai, sdk):
    sdk.chat.completions.create(model="m", messages=USER, temperature=0.5)
    request = fake_openai.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {"model": "m", "messages": USER, "temperature": 0.5}


def test_wrong_key_is_a_401_echoing_the_key(fake_openai, sdk):
    fake_openai.api_key = "sk-right"
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key provided: sk-test"):
        sdk.chat.completions.create(model="m", messages=USER)


def test_status_faults_with_retry_after(fake_openai):
    with httpx.Client(base_url=fake_openai.url) as client:
        limited = client.post("chat/completions", json={"model": "m?fault=429&retry_after=2.5", "messages": USER})
        broken = client.post("chat/completions", json={"model": "m?fault=500", "messages": USER, "stream": True})
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2.5")
    assert limited.json()["error"]["message"] == "scripted fault 429"
    assert broken.status_code == 500 and "retry-after" not in broken.headers


def test_drop_closes_the_connection_mid_stream(fake_openai):
    received = []
    with httpx.Client(base_url=fake_openai.url) as client, pytest.raises(httpx.RemoteProtocolError):
        body = {"model": "m?fault=drop&fault_after=3", "messages": USER, "stream": True}
        with client.stream("POST", "chat/completions", json=body) as response:
            received.extend(line for line in response.iter_lines() if line)
    assert len(received) == 3  # role chunk + two tokens, then the connection closed


def test_stall_sends_nothing_more(fake_openai):
    received = []
    with httpx.Client(base_url=fake_openai.url, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        body = {"model": "m?fault=stall&fault_after=1", "messages": USER, "stream": True}
        with client.stream("POST", "chat/completions", json=body) as response:
            received.extend(line for line in response.iter_lines() if line)
    assert len(received) == 1


def test_many_concurrent_streams(fake_openai):
    client = httpx.Client(base_url=fake_openai.url, limits=httpx.Limits(max_connections=50))

    def stream(_):
        body = {"model": "m?tokens=20&delay=0.001", "messages": USER, "stream": True}
        with client.stream("POST", "chat/completions", json=body) as response:
            return sum(1 for line in response.iter_lines() if line.startswith("data: {"))

    with client, ThreadPoolExecutor(50) as pool:
        assert list(pool.map(stream, range(100))) == [22] * 100  # role + 20 tokens + finish


def test_command_line_server():
    process = subprocess.Popen([sys.executable, "-m", "bestchat.testing.fake_openai", "--port", "0", "--tokens", "3"],
                               stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().split()[-1]
        answer = httpx.post(f"{url}/chat/completions", json={"model": "m", "messages": USER}).json()
        assert answer["choices"][0]["message"]["content"] == "tok0 tok1 tok2 "
    finally:
        process.terminate()
        process.wait()


def test_stop_closes_open_connections():
    server = FakeOpenAI().start()
    with httpx.Client(base_url=server.url) as client:
        assert client.get("models").status_code == 200  # the connection stays open (keep-alive)
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.get("models")
