"""The provider registry: which targets serve a model, in what order, and streaming with
failover (in-process providers for the exact rules, the real ``openai`` provider over HTTP
against the fake OpenAI server for the real failure modes)."""

from __future__ import annotations

import uuid

import pytest
from cryptography.fernet import Fernet

from bestchat.error_responses import status_of
from bestchat.errors import UnknownModel
from bestchat.models import User
from bestchat.providers.base import (
    Finish, ProviderAuthError, ProviderBadRequest, ProviderRateLimited, ProviderSettings,
    ProviderTimeout, ProviderUnavailable, TextDelta,
)
from bestchat.providers.registry import (
    ProviderKeyMissing, Target, available_models, resolve_targets, stream_with_failover,
)
from bestchat.redaction import REDACTED
from bestchat.services import accounts, provider_configs
from bestchat.testing.fake_openai import FakeOpenAI, Script
from tests.fake_providers import KeyedProvider, ScriptedProvider, installed

KEY = "sk-good-user-0123456789"
GLOBAL_KEY = "sk-good-global-0123456789"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def ctx(app):
    with app.app_context(), installed():
        yield


@pytest.fixture
def alice(ctx) -> User:
    return accounts.register("alice@example.com", "correct horse battery")


@pytest.fixture
def admin(ctx) -> User:
    return accounts.register("root@example.com", "correct horse battery", role="admin")


def config(owner: User, scope: str = "user", **values):
    values.setdefault("provider", "keyed")
    return provider_configs.create_config(owner, {"scope": scope, **values})


def plan(targets: list[Target]) -> list[tuple[str, uuid.UUID | None]]:
    return [(t.model_id, t.config_id) for t in targets]


def collect(stream) -> list[tuple[uuid.UUID | None, object]]:
    return [(target.config_id, event) for target, event in stream]


# ---- resolve_targets ----------------------------------------------------------------------

def test_order_is_own_then_global_by_priority_then_builtin_then_fallbacks(alice, admin):
    late_global = config(admin, "global", api_key=GLOBAL_KEY, priority=50)
    early_global = config(admin, "global", api_key=GLOBAL_KEY, priority=10, fallbacks=["local/tiny"])
    own = config(alice, api_key=KEY, priority=90, fallbacks=["other/o1", "keyed/k1"])
    other = config(alice, provider="other", api_key=KEY)
    config(alice, api_key=KEY, enabled=False)

    targets = resolve_targets(alice.id, "keyed/k1")
    assert plan(targets) == [
        ("keyed/k1", own.id), ("keyed/k1", early_global.id), ("keyed/k1", late_global.id),
        ("other/o1", other.id), ("local/tiny", None),
    ]
    assert [t.provider.settings.api_key for t in targets[:3]] == [KEY, GLOBAL_KEY, GLOBAL_KEY]
    assert isinstance(targets[0].provider, KeyedProvider)


def test_model_part_may_contain_slashes_and_allow_lists_apply(alice):
    any_model = config(alice, api_key=KEY)
    listed = config(alice, api_key=KEY, enabled_models=["openai/gpt-4o-mini"])
    assert plan(resolve_targets(alice.id, "keyed/openai/gpt-4o-mini")) == [
        ("keyed/openai/gpt-4o-mini", any_model.id), ("keyed/openai/gpt-4o-mini", listed.id)]
    assert plan(resolve_targets(alice.id, "keyed/k2")) == [("keyed/k2", any_model.id)]


def test_default_model(alice, app):
    assert plan(resolve_targets(alice.id, None)) == [("demo/demo", None)]
    app.config["DEFAULT_MODEL"] = "local/tiny"
    assert plan(resolve_targets(alice.id, None)) == [("local/tiny", None)]


@pytest.mark.parametrize("model_id", ["nope/x", "keyed", "keyed/", "/k1", "local/huge", "selfhosted/m",
                                      "keyed/k3"])
def test_unknown_models_are_400(alice, model_id):
    config(alice, api_key=KEY, enabled_models=["k1"])
    with pytest.raises(UnknownModel) as error:
        resolve_targets(alice.id, model_id)
    assert (status_of(error.value), error.value.code) == (400, "unknown_model")
    assert error.value.message == f"model '{model_id}' is not available"


def test_missing_key_is_a_key_free_auth_error(alice, admin, app):
    with pytest.raises(ProviderKeyMissing) as error:
        resolve_targets(alice.id, "keyed/k1")
    assert isinstance(error.value, ProviderAuthError) and "keyed" in error.value.message

    config(alice, api_key=KEY)
    app.config["ENCRYPTION_KEYS"] = [Fernet.generate_key().decode()]  # the key's key is gone
    with pytest.raises(ProviderKeyMissing) as error:
        resolve_targets(alice.id, "keyed/k1")
    assert KEY not in str(error.value)


def test_other_users_configs_are_never_targets(alice, admin):
    config(admin, api_key=KEY)  # the admin's own (user-scoped) config
    with pytest.raises(ProviderKeyMissing):
        resolve_targets(alice.id, "keyed/k1")


def test_fallback_cycles_terminate_and_unservable_fallbacks_are_skipped(alice):
    first = config(alice, api_key=KEY, enabled_models=["k1"], fallbacks=["nope/x", "other/o1", "keyed/k2"])
    second = config(alice, provider="other", api_key=KEY, fallbacks=["keyed/k1", "other/o1"])
    assert plan(resolve_targets(alice.id, "keyed/k1")) == [("keyed/k1", first.id), ("other/o1", second.id)]
    assert plan(resolve_targets(alice.id, "other/o1")) == [("other/o1", second.id), ("keyed/k1", first.id)]


def test_available_models_has_demo_and_dedupes(alice, admin):
    config(alice, api_key=KEY, enabled_models=["k1"])
    config(admin, "global", api_key=GLOBAL_KEY)
    models = available_models(alice)
    ids = [m["id"] for m in models]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    sources = {m["id"]: m["source"] for m in models}
    assert sources["demo/demo"] == "builtin"
    assert sources["keyed/k1"] == "user" and sources["keyed/k2"] == "global"


# ---- stream_with_failover (in-process) ------------------------------------------------------

def scripted(*steps) -> Target:
    return Target("scripted", "m", uuid.uuid4(), ScriptedProvider(list(steps)))


@pytest.mark.parametrize("error", [ProviderUnavailable("down"), ProviderRateLimited("slow"),
                                   ProviderTimeout("late")])
def test_retryable_error_before_first_event_fails_over(error):
    first, second = scripted(error), scripted(TextDelta("hi"), Finish())
    assert collect(stream_with_failover([first, second], MESSAGES)) == [
        (second.config_id, TextDelta("hi")), (second.config_id, Finish())]
    assert first.provider.started == second.provider.started == 1


def test_non_retryable_error_is_not_failed_over():
    first, second = scripted(ProviderAuthError("bad key")), scripted(TextDelta("hi"))
    with pytest.raises(ProviderAuthError):
        collect(stream_with_failover([first, second], MESSAGES))
    assert second.provider.started == 0


def test_error_after_first_event_propagates():
    first, second = scripted(TextDelta("par"), ProviderUnavailable("dropped")), scripted(TextDelta("hi"))
    stream = stream_with_failover([first, second], MESSAGES)
    assert next(stream) == (first, TextDelta("par"))
    with pytest.raises(ProviderUnavailable):
        next(stream)
    assert second.provider.started == 0


def test_all_failing_raises_the_last_error_without_the_key():
    first = scripted(ProviderUnavailable("first down"))
    last = Target("scripted", "m", None, ScriptedProvider(
        [ProviderRateLimited(f"quota exceeded for {KEY}")],
        settings=ProviderSettings(api_key=KEY)))
    with pytest.raises(ProviderRateLimited) as error:
        collect(stream_with_failover([first, last], MESSAGES))
    assert KEY not in str(error.value) and REDACTED in error.value.message


def test_options_merge_config_and_call_options(alice):
    config(alice, api_key=KEY, options={"temperature": 0.2, "region": "eu"})
    targets = resolve_targets(alice.id, "keyed/k1") + resolve_targets(alice.id, "local/tiny")
    events = collect(stream_with_failover(targets, MESSAGES, options={"max_tokens": 5, "region": "us"}))
    assert events[0][1] == TextDelta("hello from k1")
    options = KeyedProvider.calls[-1]["options"]
    assert (options.temperature, options.max_tokens, options.region) == (0.2, 5, "us")
    with pytest.raises(ProviderBadRequest):
        collect(stream_with_failover(targets, MESSAGES, options={"temperature": 7}))


# ---- failover over real HTTP (openai provider -> fake OpenAI server) ----------------------

@pytest.fixture
def two_openai_configs(alice, admin, fake_openai):
    own = config(alice, provider="openai", api_key=KEY, base_url=fake_openai.url,
                 enabled_models=["gpt-4o-mini"])
    shared = config(admin, "global", provider="openai", api_key=GLOBAL_KEY, base_url=fake_openai.url)
    return own, shared


def chats(server: FakeOpenAI) -> list:
    """The chat requests the server received (not the model lists a config's creation asks for)."""
    return [r for r in server.requests if r.method == "POST"]


def keys_sent(server: FakeOpenAI) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in chats(server)]


@pytest.mark.parametrize("fault", [500, 503, 429])
def test_http_fault_before_first_token_fails_over_to_the_next_config(alice, two_openai_configs, fake_openai, fault):
    own, shared = two_openai_configs
    fake_openai.enqueue(Script(fault=fault, retry_after=0), Script(content="served by global"))
    events = collect(stream_with_failover(resolve_targets(alice.id, "openai/gpt-4o-mini"), MESSAGES))
    text = "".join(e.text for _, e in events if isinstance(e, TextDelta))
    assert text == "served by global" and {cid for cid, _ in events} == {shared.id}
    assert keys_sent(fake_openai) == [KEY, GLOBAL_KEY]


def test_http_error_after_first_token_is_not_retried(alice, two_openai_configs, fake_openai):
    own, _ = two_openai_configs
    fake_openai.enqueue(Script(content="one two three four", fault="drop", fault_after=2))
    received = []
    with pytest.raises(ProviderUnavailable):
        for target, event in stream_with_failover(resolve_targets(alice.id, "openai/gpt-4o-mini"), MESSAGES):
            received.append((target.config_id, event))
    assert received and {cid for cid, _ in received} == {own.id}
    assert keys_sent(fake_openai) == [KEY]


def test_http_all_targets_failing_raise_the_last_error(alice, two_openai_configs, fake_openai):
    fake_openai.script = Script(fault=502)
    with pytest.raises(ProviderUnavailable) as error:
        collect(stream_with_failover(resolve_targets(alice.id, "openai/gpt-4o-mini"), MESSAGES))
    assert len(chats(fake_openai)) == 2
    assert KEY not in str(error.value) and GLOBAL_KEY not in str(error.value)


def test_http_rejected_key_is_not_failed_over_and_not_echoed(alice, admin):
    with FakeOpenAI(api_key="sk-the-right-one-000") as server:
        config(alice, provider="openai", api_key=KEY, base_url=server.url)
        config(admin, "global", provider="openai", api_key=GLOBAL_KEY, base_url=server.url)
        with pytest.raises(ProviderAuthError) as error:
            collect(stream_with_failover(resolve_targets(alice.id, "openai/gpt-4o-mini"), MESSAGES))
        assert len(chats(server)) == 1
    assert KEY not in str(error.value)


def test_http_test_endpoint(client, user, fake_openai, app):
    with installed():
        good = client.post("/api/v1/providers", {"provider": "openai", "api_key": KEY,
                                                 "base_url": fake_openai.url}).get_json()
        assert client.post(f"/api/v1/providers/{good['id']}/test").get_json() == {
            "ok": True, "model": "gpt-4o-mini", "not_listed": []}
        assert fake_openai.requests[-1].body["max_tokens"] == 1
        fake_openai.script = Script(fault=500)
        result = client.post(f"/api/v1/providers/{good['id']}/test").get_json()
        assert result["ok"] is False and result["error"]
        with FakeOpenAI(api_key="sk-the-right-one-000") as strict:
            client.put(f"/api/v1/providers/{good['id']}", {"base_url": strict.url})
            response = client.post(f"/api/v1/providers/{good['id']}/test")
    assert response.get_json()["ok"] is False and KEY not in response.get_data(as_text=True)


def test_tool_choice_reaches_a_provider_only_when_given():
    class Choosy(ScriptedProvider):
        seen: list[dict] = []

        def stream(self, model, messages, *, options=None, tools=None, tool_choice=None):
            Choosy.seen.append({"tools": tools, "tool_choice": tool_choice})
            yield Finish()

    tools = [{"type": "function", "function": {"name": "f"}}]
    choosy = Target("scripted", "m", None, Choosy([]))
    collect(stream_with_failover([choosy], MESSAGES, tools=tools, tool_choice="required"))
    assert Choosy.seen == [{"tools": tools, "tool_choice": "required"}]
    # A provider whose stream() has no tool_choice argument still works without one.
    plain = scripted(Finish())
    assert collect(stream_with_failover([plain], MESSAGES, tools=tools)) == [(plain.config_id, Finish())]
