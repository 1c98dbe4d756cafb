"""The ``litellm`` provider, through real litellm and real HTTP against the fake OpenAI server."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

import bestchat_litellm
from bestchat.plugin_api import (
    Finish, OutboundPolicy, ProviderAddressRefused, ProviderAuthError, ProviderBadRequest, ProviderError,
    ProviderOptions, ProviderRateLimited, ProviderSettings, ProviderTimeout, ProviderUnavailable, TextDelta, ToolCall,
    Usage,
)
from bestchat.testing import network
from bestchat.testing.fake_openai import Script
from bestchat_litellm import LiteLLMProvider

# litellm reads pydantic attributes the deprecated way; that is litellm's business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning")

# The fake server listens on loopback, which the default policy refuses.
LOOPBACK = OutboundPolicy.allowing("127.0.0.0/8")
KEY = "sk-test-0123456789abcdef"
USER = [{"role": "user", "content": "Tell me a story"}]
# gpt-4o-mini in litellm's bundled price map: USD per token.
PROMPT_PRICE, COMPLETION_PRICE = 0.15e-6, 0.6e-6


@pytest.fixture
def provider(fake_openai):
    return LiteLLMProvider(ProviderSettings(api_key=KEY, base_url=fake_openai.url, outbound=LOOPBACK))


def test_streams_the_exact_text_then_usage_with_cost(provider, fake_openai):
    fake_openai.script = Script(content="Once upon a time, a fox.")
    events = list(provider.stream("openai/gpt-4o-mini", USER))
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == "Once upon a time, a fox." and len(texts) == 6
    usage, finish = events[-2:]
    assert (usage.prompt_tokens, usage.completion_tokens, finish) == (4, 6, Finish("stop"))
    assert usage.cost == pytest.approx(4 * PROMPT_PRICE + 6 * COMPLETION_PRICE)


def test_sends_key_model_and_options(provider, fake_openai):
    list(provider.stream("openai/gpt-4o-mini", USER, options=ProviderOptions(temperature=0.2, timeout=30)))
    request = fake_openai.requests[-1]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    # Sent by litellm's own HTTP handler, not the OpenAI SDK (its per-chunk parsing costs more).
    assert not [name for name in request.headers if name.startswith("x-stainless")]
    assert request.body["model"] == "gpt-4o-mini" and request.body["temperature"] == 0.2
    assert request.body["stream_options"] == {"include_usage": True}


def test_cached_prompt_tokens_are_counted_and_priced_at_the_cache_read_price():
    from types import SimpleNamespace

    reported = SimpleNamespace(prompt_tokens=1000, completion_tokens=100,
                               prompt_tokens_details=SimpleNamespace(cached_tokens=400))
    assert bestchat_litellm.cached_tokens(reported) == 400
    assert bestchat_litellm.cached_tokens(SimpleNamespace(prompt_tokens_details=None)) == 0
    litellm = bestchat_litellm.load_litellm()
    cost = bestchat_litellm.cost(litellm, "gpt-4o-mini", 1000, 100, 400)
    assert cost == pytest.approx(600 * PROMPT_PRICE + 400 * 0.075e-6 + 100 * COMPLETION_PRICE)


def test_unknown_model_has_no_cost(provider):
    events = list(provider.stream("openai/my-finetune?tokens=2", USER))
    assert events[-2] == Usage(prompt_tokens=4, completion_tokens=2, cost=None)


def test_assembles_streamed_tool_calls(provider, fake_openai):
    fake_openai.enqueue(Script(content="Checking.", tool_calls=[
        {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris, France", "days": 3}},
        {"id": "call_b", "name": "get_time", "arguments": {}},
    ]))
    tool = {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}
    events = list(provider.stream("openai/gpt-4o-mini", USER, tools=[tool]))
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
    list(provider.stream("openai/gpt-4o-mini", messages, tools=[tool], tool_choice=choice))
    body = fake_openai.requests[-1].body
    assert (body["tools"], body["tool_choice"]) == ([tool], choice)
    sent = [{k: v for k, v in m.items() if v is not None} for m in messages]  # (litellm drops a null content)
    assert body["messages"] == sent


@pytest.mark.parametrize("model, error_class, status", [
    ("openai/m?fault=429&retry_after=3", ProviderRateLimited, 429),
    ("openai/m?fault=500", ProviderUnavailable, 500),
    ("openai/m?fault=503", ProviderUnavailable, 503),
    ("openai/m?fault=400", ProviderBadRequest, 400),
    ("openai/m?fault=403", ProviderAuthError, 403),
])
def test_http_errors_map_to_provider_errors(provider, fake_openai, model, error_class, status, capfd):
    with pytest.raises(error_class) as caught:
        list(provider.stream(model, USER))
    assert caught.value.status == status
    assert len(fake_openai.requests) == 1  # litellm does not retry: failover decides
    assert caught.value.retry_after == (3.0 if status == 429 else None)
    assert "Give Feedback" not in capfd.readouterr().out  # litellm's banner is off


def test_rejected_key_is_an_auth_error_that_never_shows_the_key(provider, fake_openai):
    fake_openai.api_key = "sk-the-right-one"  # the server's 401 message quotes the key it got
    with pytest.raises(ProviderAuthError) as caught:
        list(provider.stream("openai/gpt-4o-mini", USER))
    assert caught.value.status == 401 and not caught.value.retryable
    assert KEY not in str(caught.value) and KEY[:10] not in repr(caught.value)


def test_upstream_error_text_is_detail_with_the_key_redacted(provider, fake_openai):
    fake_openai.enqueue(Script(fault=400, fault_message=f"cannot use {KEY} here"))
    with pytest.raises(ProviderBadRequest) as caught:
        list(provider.stream("openai/gpt-4o-mini", USER))
    assert "HTTP 400" in caught.value.message and "cannot use" not in caught.value.message
    assert "cannot use [redacted] here" in caught.value.detail
    assert KEY not in str(caught.value) and KEY not in caught.value.detail


def test_dropped_connection_mid_stream_is_unavailable(provider):
    events = []
    with pytest.raises(ProviderUnavailable) as caught:
        events.extend(provider.stream("openai/m?fault=drop&fault_after=3", USER))
    assert events == [TextDelta("tok0 "), TextDelta("tok1 ")]
    assert KEY not in str(caught.value)


def test_stall_is_a_timeout(provider):
    with pytest.raises(ProviderTimeout) as caught:
        list(provider.stream("openai/m?fault=stall&fault_after=2", USER, options=ProviderOptions(timeout=0.3)))
    assert caught.value.retryable and KEY not in str(caught.value)


def test_importing_the_plugin_does_not_import_litellm():
    code = "import sys, bestchat_litellm; print('litellm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_litellm_counts_tokens_offline():
    # Any download attempt goes to a closed local port and fails.
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    env.pop("TIKTOKEN_CACHE_DIR", None)
    code = ("import bestchat_litellm; litellm = bestchat_litellm.load_litellm(); "
            "print(litellm.token_counter(model='gpt-4o-mini', text='hello world'), "
            "litellm.token_counter(model='gpt-3.5-turbo', text='hello world'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["2", "2"]


def test_registered_through_the_entry_point_and_hook():
    (entry_point,) = [e for e in entry_points(group="bestchat") if e.name == "litellm"]
    assert entry_point.load() is bestchat_litellm
    registered = []
    bestchat_litellm.register_providers(registered.append)
    assert registered == [LiteLLMProvider]
    assert LiteLLMProvider.name == "litellm" and LiteLLMProvider.supports_tools


# ---- the server's own credentials and addresses -----------------------------------------

@pytest.fixture
def loopback_only(monkeypatch):
    """Only loopback can be reached, even if a refusal below ever broke (litellm's cloud
    families would otherwise ask DNS, a metadata service or the vendor)."""
    network.loopback_only(monkeypatch)


@pytest.mark.parametrize("model", [
    "bedrock/anthropic.claude-v2", "anthropic.claude-3-haiku-20240307-v1:0", "sagemaker/my-endpoint",
    "sagemaker_chat/my-endpoint", "vertex_ai/gemini-pro", "azure/gpt-4o", "watsonx/ibm/granite",
    "databricks/dbrx", "github_copilot/gpt-4o", "oci/cohere.command",
])
def test_families_that_use_the_servers_own_credentials_are_refused(fake_openai, loopback_only, model):
    for is_global in (False, True):
        settings = ProviderSettings(api_key=KEY, base_url=fake_openai.url, outbound=LOOPBACK, is_global=is_global)
        with pytest.raises(ProviderBadRequest, match="not allowed") as caught:
            list(LiteLLMProvider(settings).stream(model, USER))
        assert "server's own credentials" in caught.value.message
    assert fake_openai.requests == []


def test_an_admin_allows_an_ambient_family_for_global_configs_only(app, fake_openai, loopback_only):
    app.config["LITELLM_AMBIENT_CREDENTIAL_PROVIDERS"] = ["sagemaker"]
    with app.app_context():
        user_config = LiteLLMProvider(ProviderSettings(api_key=KEY, outbound=LOOPBACK))
        with pytest.raises(ProviderBadRequest, match="not allowed"):
            list(user_config.stream("sagemaker/my-endpoint", USER))
        assert LiteLLMProvider(ProviderSettings(api_key=KEY, outbound=LOOPBACK, is_global=True)) \
            ._family(bestchat_litellm.load_litellm(), "sagemaker/my-endpoint") == "sagemaker"


def test_a_base_url_refused_by_the_policy_is_never_called(fake_openai):
    provider = LiteLLMProvider(ProviderSettings(api_key=KEY, base_url=fake_openai.url))  # strict policy
    for model in ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "ollama/llama3"):
        with pytest.raises(ProviderAddressRefused, match="loopback"):
            list(provider.stream(model, USER))
    assert fake_openai.requests == []


def test_families_litellm_connects_itself_need_a_fixed_address_for_users(fake_openai):
    """litellm resolves the name itself for these: a user's config may not use a host name
    (it could resolve differently at connect time), only an address the policy checked."""
    by_name = fake_openai.url.replace("127.0.0.1", "localhost")
    policy = OutboundPolicy.allowing("127.0.0.0/8", resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(ProviderAddressRefused, match="resolves the host name itself"):
        list(LiteLLMProvider(ProviderSettings(api_key=KEY, base_url=by_name, outbound=policy))
             .stream("anthropic/claude-3-5-haiku-latest", USER))
    with pytest.raises(ProviderError) as caught:  # by address: litellm is called (the fake speaks OpenAI only)
        list(LiteLLMProvider(ProviderSettings(api_key=KEY, base_url=fake_openai.url, outbound=policy))
             .stream("anthropic/claude-3-5-haiku-latest", USER))
    assert not isinstance(caught.value, ProviderAddressRefused)
