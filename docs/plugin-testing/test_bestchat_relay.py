"""Tests of bestchat-relay: the provider alone against the fake server, then a whole chat."""

import pytest

import bestchat_relay
from bestchat.plugin_api import (
    Finish, OutboundPolicy, ProviderAddressRefused, ProviderRateLimited, ProviderSettings, TextDelta, Usage,
)
from bestchat.testing import Script, add_provider, plugin_registered, send_and_wait

# The fake server listens on 127.0.0.1, which a provider's default outbound policy refuses.
LOOPBACK = OutboundPolicy.allowing("127.0.0.0/8")
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def provider(fake_openai):
    settings = ProviderSettings(api_key="sk-test", base_url=fake_openai.url, outbound=LOOPBACK)
    return bestchat_relay.RelayProvider(settings)


def test_relays_the_answer_and_its_usage(provider, fake_openai):
    fake_openai.script = Script(content="Hello from upstream.")
    events = list(provider.stream("gpt-4o-mini", HELLO))
    assert events == [TextDelta("Hello from upstream."), Usage(2, 3), Finish("stop")]
    request = fake_openai.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {"model": "gpt-4o-mini", "messages": HELLO}


def test_a_rate_limit_is_a_retryable_error(provider, fake_openai):
    fake_openai.enqueue(Script(fault=429, retry_after=3))
    with pytest.raises(ProviderRateLimited) as caught:
        list(provider.stream("gpt-4o-mini", HELLO))
    assert caught.value.retryable and caught.value.retry_after == 3


def test_an_address_the_policy_refuses_is_never_called(fake_openai):
    provider = bestchat_relay.RelayProvider(ProviderSettings(base_url=fake_openai.url))  # the default policy
    with pytest.raises(ProviderAddressRefused, match="loopback"):
        list(provider.stream("gpt-4o-mini", HELLO))
    assert fake_openai.requests == []


def test_a_whole_chat_through_bestchat(client, user, fake_openai):
    fake_openai.script = Script(content="Relayed.")
    with plugin_registered(bestchat_relay, "bestchat-relay"):
        add_provider(client, "relay", base_url=fake_openai.url, enabled_models=["gpt-4o-mini"])
        answer = send_and_wait(client, "Say hello", model="relay/gpt-4o-mini")
    assert (answer["status"], answer["content"]) == ("complete", "Relayed.")
    assert answer["usage"]["completion_tokens"] == 1
    assert fake_openai.requests[-1].body["messages"][-1] == HELLO[-1]
