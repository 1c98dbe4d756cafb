"""The ``openai`` provider, through real HTTP against the fake OpenAI server."""

from __future__ import annotations

import socket
from importlib.metadata import entry_points

import pytest

import bestchat_openai
import bestchat_openai_http
from bestchat.plugin_api import (
    Finish, OutboundPolicy, ProviderAuthError, ProviderBadRequest, ProviderError, ProviderOptions, ProviderRateLimited,
    ProviderSettings, ProviderTimeout, ProviderUnavailable, TextDelta, ToolCall, Usage, proxied,
)
from bestchat.testing.fake_openai import FakeOpenAI, Script
from bestchat_openai import OpenAIProvider

# The fake server listens on loopback, which the default policy refuses.
LOOPBACK = OutboundPolicy.allowing("127.0.0.0/8")
KEY = "sk-test-0123456789abcdef"
USER = [{"role": "user", "content": "Tell me a story"}]


@pytest.fixture
def provider(fake_openai):
    return OpenAIProvider(ProviderSettings(api_key=KEY, base_url=fake_openai.url, outbound=LOOPBACK))


def test_streams_the_exact_text_then_usage_and_finish(provider, fake_openai):
    fake_openai.script = Script(content="Once upon a time, a fox.")
    events = list(provider.stream("gpt-4o-mini", USER))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Once upon a time, a fox."
    assert len([e for e in events if isinstance(e, TextDelta)]) == 6  # streamed, not buffered
    assert events[-2:] == [Usage(prompt_tokens=4, completion_tokens=6), Finish("stop")]


def test_sends_key_model_options_and_usage_request(provider, fake_openai):
    list(provider.stream("gpt-4o-mini", USER, options=ProviderOptions(temperature=0.2, max_tokens=50, timeout=30)))
    request = fake_openai.requests[-1]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {"model": "gpt-4o-mini", "messages": USER, "stream": True,
                            "stream_options": {"include_usage": True}, "temperature": 0.2, "max_tokens": 50}


def test_assembles_streamed_tool_calls(provider, fake_openai):
    fake_openai.enqueue(Script(content="Checking.", tool_calls=[
        {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris, France", "days": 3}},
        {"id": "call_b", "name": "get_time", "arguments": {}},
    ]))
    tool = {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}
    events = list(provider.stream("gpt-4o-mini", USER, tools=[tool]))
    assert events[0] == TextDelta("Checking.")
    assert events[1:3] == [ToolCall("call_a", "get_weather", {"city": "Paris, France", "days": 3}),
                           ToolCall("call_b", "get_time", {})]
    assert events[-1] == Finish("tool_calls")
    assert fake_openai.requests[-1].body["tools"] == [{"type": "function", "function": tool}]
    assert "tool_choice" not in fake_openai.requests[-1].body


def test_sends_tool_choice_and_a_tool_round_in_openai_shape(provider, fake_openai):
    tool = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    choice = {"type": "function", "function": {"name": "get_time"}}
    call = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    messages = [*USER, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "12:00"}]
    list(provider.stream("gpt-4o-mini", messages, tools=[tool], tool_choice=choice))
    body = fake_openai.requests[-1].body
    assert (body["tools"], body["tool_choice"], body["messages"]) == ([tool], choice, messages)


@pytest.mark.parametrize("model, error_class, status", [
    ("m?fault=429&retry_after=2.5", ProviderRateLimited, 429),
    ("m?fault=500", ProviderUnavailable, 500),
    ("m?fault=503", ProviderUnavailable, 503),
    ("m?fault=400", ProviderBadRequest, 400),
    ("m?fault=403", ProviderAuthError, 403),
])
def test_http_errors_map_to_provider_errors(provider, model, error_class, status):
    with pytest.raises(error_class) as caught:
        list(provider.stream(model, USER))
    assert caught.value.status == status
    assert caught.value.retry_after == (2.5 if status == 429 else None)
    assert caught.value.retryable is (status >= 429 and status != 403)


def test_rejected_key_is_an_auth_error_that_never_shows_the_key(provider, fake_openai):
    fake_openai.api_key = "sk-the-right-one"  # the server's 401 message quotes the key it got
    with pytest.raises(ProviderAuthError) as caught:
        list(provider.stream("gpt-4o-mini", USER))
    assert caught.value.status == 401 and not caught.value.retryable
    assert KEY not in str(caught.value) and KEY[:10] not in repr(caught.value)


def test_upstream_error_text_is_detail_with_the_key_redacted(provider, fake_openai):
    fake_openai.enqueue(Script(fault=400, fault_message=f"cannot use {KEY} here"))
    with pytest.raises(ProviderBadRequest) as caught:
        list(provider.stream("gpt-4o-mini", USER))
    assert "HTTP 400" in caught.value.message and "cannot use" not in caught.value.message
    assert "cannot use [redacted] here" in caught.value.detail
    assert KEY not in str(caught.value) and KEY not in caught.value.detail


def test_dropped_connection_mid_stream_is_unavailable(provider):
    events = []
    with pytest.raises(ProviderUnavailable) as caught:
        events.extend(provider.stream("m?fault=drop&fault_after=3", USER))
    assert events == [TextDelta("tok0 "), TextDelta("tok1 ")]
    assert KEY not in str(caught.value)


def test_stall_is_a_timeout(provider):
    with pytest.raises(ProviderTimeout) as caught:
        list(provider.stream("m?fault=stall&fault_after=2", USER, options=ProviderOptions(timeout=0.3)))
    assert caught.value.retryable and KEY not in str(caught.value)


def test_slow_first_token_is_a_timeout(provider):
    with pytest.raises(ProviderTimeout):
        list(provider.stream("m?ttft=5", USER, options=ProviderOptions(timeout=0.3)))


def test_connection_refused_is_unavailable():
    with FakeOpenAI() as server:
        url = server.url
    provider = OpenAIProvider(ProviderSettings(api_key=KEY, base_url=url, outbound=LOOPBACK))
    with pytest.raises(ProviderUnavailable, match="connection failed"):
        list(provider.stream("gpt-4o-mini", USER))


def test_local_base_url_works_without_a_key(fake_openai):
    provider = OpenAIProvider(ProviderSettings(base_url=fake_openai.url, outbound=LOOPBACK))
    assert list(provider.stream("llama3.2?content=hi", USER))[0] == TextDelta("hi")
    assert "authorization" not in fake_openai.requests[-1].headers


def test_official_api_without_a_key_fails_before_any_request():
    with pytest.raises(ProviderAuthError, match="no API key"):
        list(OpenAIProvider(ProviderSettings()).stream("gpt-4o-mini", USER))


def test_stream_cut_without_finish_or_done_is_unavailable():
    lines = ['data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}', ""]
    events = []
    with pytest.raises(ProviderUnavailable, match="ended before"):
        events.extend(bestchat_openai.parse_stream(iter(lines), "example.com", KEY))
    assert events == [TextDelta("Hel")]


def test_usage_counts_the_prompt_tokens_the_upstream_served_from_its_cache():
    lines = ['data: {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}',
             'data: {"choices": [], "usage": {"prompt_tokens": 2006, "completion_tokens": 300, '
             '"prompt_tokens_details": {"cached_tokens": 1920}}}', "data: [DONE]"]
    events = list(bestchat_openai.parse_stream(iter(lines), "example.com", KEY))
    assert events[-2] == Usage(prompt_tokens=2006, completion_tokens=300, cached_tokens=1920)
    assert OpenAIProvider().price("gpt-4o-mini") is None  # the server's model map prices it


def test_error_event_in_stream_is_unavailable_and_redacted():
    lines = ["data: " + '{"error": {"message": "overloaded for ' + KEY + '"}}']
    with pytest.raises(ProviderUnavailable) as caught:
        list(bestchat_openai.parse_stream(iter(lines), "example.com", KEY))
    assert caught.value.detail == "overloaded for [redacted]" and "overloaded" not in caught.value.message


def test_tool_arguments_that_are_not_json_raise():
    lines = ['data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", '
             '"function": {"name": "f", "arguments": "{oops"}}]}, "finish_reason": "tool_calls"}]}']
    with pytest.raises(ProviderError, match="not a JSON object"):
        list(bestchat_openai.parse_stream(iter(lines), "example.com", KEY))


def counting_loopback() -> tuple[OutboundPolicy, list[tuple[str, int]]]:
    """A loopback policy that records every connection it opens."""
    opened: list[tuple[str, int]] = []

    def connect(address, timeout, source_address):
        opened.append(address)
        return socket.create_connection(address, timeout, source_address)

    return OutboundPolicy.allowing("127.0.0.0/8", connector=connect), opened


def test_streams_reuse_one_kept_alive_connection_per_base_url(fake_openai):
    assert bestchat_openai_http.pool_for(fake_openai.url) is bestchat_openai_http.pool_for(fake_openai.url)
    assert bestchat_openai_http.pool_for(fake_openai.url) is not bestchat_openai_http.pool_for("http://other/v1")
    policy, opened = counting_loopback()
    provider = OpenAIProvider(ProviderSettings(api_key=KEY, base_url=fake_openai.url, outbound=policy))
    list(provider.stream("gpt-4o-mini", USER))
    list(provider.stream("gpt-4o-mini", USER))
    assert opened == [("127.0.0.1", fake_openai.port)]  # the same connection served both answers
    assert len(fake_openai.requests) == 2


def test_a_connection_the_server_closed_while_idle_is_replaced_transparently():
    policy, opened = counting_loopback()
    with FakeOpenAI() as server:
        url, port = server.url, server.port
        provider = OpenAIProvider(ProviderSettings(api_key=KEY, base_url=url, outbound=policy))
        assert list(provider.stream("m?content=one", USER))[0] == TextDelta("one")
    assert len(opened) == 1  # kept idle, and now stale: its server is gone
    with FakeOpenAI(port=port):
        assert list(provider.stream("m?content=two", USER))[0] == TextDelta("two")
    assert len(opened) == 2  # the stale one failed before any answer: one fresh connection


def test_a_proxy_in_the_environment_sends_the_request_through_httpx(monkeypatch, fake_openai):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    assert proxied("http://api.example.com/v1")
    assert not proxied("https://api.example.com/v1")  # no HTTPS_PROXY
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert not proxied("http://api.example.com/v1")


def test_registered_through_the_entry_point_and_hook():
    (entry_point,) = [e for e in entry_points(group="bestchat") if e.name == "openai"]
    assert entry_point.load() is bestchat_openai
    registered = []
    bestchat_openai.register_providers(registered.append)
    assert registered == [OpenAIProvider]
    assert OpenAIProvider.name == "openai" and OpenAIProvider.supports_tools and OpenAIProvider.needs_key


# ---- model discovery ------------------------------------------------------------------------

def test_discovers_the_servers_models_with_the_key(provider, fake_openai):
    fake_openai.models = ("llama3.2:1b", "qwen2.5:0.5b")
    assert provider.discover_models() == ["llama3.2:1b", "qwen2.5:0.5b"]
    request = fake_openai.requests[-1]
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {provider.settings.api_key}"


def test_discovery_errors_are_key_free_provider_errors():
    key = "sk-wrong-0123456789abcdef"
    with FakeOpenAI(api_key="sk-the-right-one-000") as server:
        provider = OpenAIProvider(ProviderSettings(api_key=key, base_url=server.url,
                                                   outbound=OutboundPolicy.allowing("127.0.0.0/8")))
        with pytest.raises(ProviderAuthError) as error:
            provider.discover_models()
    assert key not in str(error.value) and "HTTP 401" in error.value.message


def test_the_official_api_is_not_asked_without_a_key():
    with pytest.raises(ProviderAuthError):
        OpenAIProvider(ProviderSettings()).discover_models()


def test_a_custom_base_url_never_offers_the_default_openai_models(fake_openai):
    custom = OpenAIProvider(ProviderSettings(base_url=fake_openai.url))
    assert custom.models() == []
    discovered = OpenAIProvider(ProviderSettings(base_url=fake_openai.url, discovered_models=["m1"],
                                                 model_names={"m1": "Model One"}))
    assert [(m.id, m.name) for m in discovered.models()] == [("m1", "Model One")]
    assert [m.id for m in OpenAIProvider(ProviderSettings(api_key="k")).models()] == list(OpenAIProvider.default_models)
