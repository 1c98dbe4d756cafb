"""A provider plugin's bug fails only what it touches, and says whose bug it is.

A provider whose stream raises something that is not a ``ProviderError`` (before or after its
first event) ends the answer ``failed`` with the code ``provider_failed`` and a message naming
the provider and its plugin, never the exception's text; the log has the traceback; the plugin's
failure count goes up once. A built-in provider's ``models()`` that raises is isolated and
counted the same way (a ``warm_up`` that raises: tests/test_warmup.py).
Conversation settings are a provider's options: out of its ``Options`` bounds is refused when
the conversation is created, within them reaches its ``stream()``. Generations run in-process
on both backends, driven as a user drives them (REST, SSE, ``/v1``).
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from pydantic import Field

from bestchat import plugins
from bestchat.extensions import db
from bestchat.models import Message
from bestchat.plugin_api import Finish, Provider, ProviderOptions, TextDelta, hookimpl
from bestchat.streaming import events
from bestchat.streaming.memory_bus import MemoryBus
from bestchat.testing.client import assert_error
from bestchat.testing.plugins import plugin_registered
from tests.chat_fakes import app_config, jobs, wait_for  # noqa: F401

API = "/api/v1"
PLUGIN = "bestchat-stumbles"
SECRET = "10.0.0.7 said: token sk-abcdefgh"  # what a plugin's exception may carry


class Stumbles(Provider):
    """Model ``after-one`` raises after its first piece of text, ``at-once`` before any."""

    name = "stumbles"
    needs_key = False
    default_models = ("after-one", "at-once")

    def stream(self, model, messages, *, options=None, tools=None):
        if model == "at-once":
            raise KeyError(SECRET)
        yield TextDelta("so far")
        raise RuntimeError(SECRET)


class Depth(ProviderOptions):
    depth: int | None = Field(None, ge=1, le=5, description="How deep to think")


class Measured(Provider):
    """Records the options each answer reaches it with."""

    name = "measured"
    needs_key = False
    default_models = ("m",)
    Options = Depth
    received: list[Depth] = []

    def stream(self, model, messages, *, options=None, tools=None):
        Measured.received.append(options)
        yield TextDelta("measured")
        yield Finish("stop")


class Plugin:
    @hookimpl
    def register_providers(self, register):
        register(Stumbles)
        register(Measured)


@pytest.fixture
def stumbles(app, jobs):  # noqa: F811 - jobs: running answers end before the plugin goes
    Measured.received = []
    with plugin_registered(Plugin(), PLUGIN):
        yield


def new_conversation(client, model: str, **settings) -> str:
    response = client.post(f"{API}/conversations", {"model": model, "settings": settings})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def answer(client, conversation_id: str) -> str:
    response = client.post(f"{API}/conversations/{conversation_id}/messages", {"content": "hi"})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["assistant_message"]["id"]


def ended(app, message_id: str) -> Message:
    """The answer once its generation has ended."""
    def settled():
        with app.app_context():
            message = db.session.get(Message, uuid.UUID(message_id))
            done = message.status not in ("pending", "queued", "streaming")
            if done:
                db.session.expunge(message)
            db.session.rollback()
            return message if done else None
    return wait_for(settled)


def last_event(client, message_id: str) -> tuple[str, dict]:
    """The SSE stream's last event: its type and the error it carries."""
    block = client.get(f"{API}/messages/{message_id}/stream").get_data(as_text=True).strip().split("\n\n")[-1]
    data = json.loads(next(line for line in block.splitlines() if line.startswith("data: "))[len("data: "):])
    return data["type"], data.get("error")


def failures() -> int:
    return plugins.failure_counts().get(PLUGIN, 0)


@pytest.mark.parametrize("model, content", [("after-one", "so far"), ("at-once", "")])
def test_a_provider_raising_fails_the_answer_naming_provider_and_plugin(app, client, user, stumbles, caplog,
                                                                         model, content):
    before = failures()
    caplog.set_level(logging.INFO)
    message_id = answer(client, new_conversation(client, f"stumbles/{model}"))
    message = ended(app, message_id)

    expected = f"the provider 'stumbles' (plugin {PLUGIN}) failed: an unexpected error"
    assert (message.status, message.error_code, message.error) == ("failed", "provider_failed", expected)
    assert message.content == content  # what came before the failure is kept
    assert last_event(client, message_id) == (events.FAILED, {"code": "provider_failed", "message": expected})
    assert failures() == before + 1

    (logged,) = [record for record in caplog.records if record.exc_info]  # once, with the traceback
    assert logged.levelno == logging.ERROR
    assert isinstance(logged.exc_info[1], RuntimeError if model == "after-one" else KeyError)
    assert all(name in logged.getMessage() for name in ("stumbles", PLUGIN, f"stumbles/{model}"))
    shown = [message.error, client.get(f"{API}/conversations/{message.conversation_id}/messages").get_data(as_text=True)]
    assert not any("10.0.0.7" in text or "sk-abc" in text for text in shown)


def test_the_openai_compatible_api_answers_a_provider_failure_with_502(app, client, user, backend, stumbles):
    if backend == "production":  # (the Redis bus's reader would block this un-patched process)
        app.extensions["bestchat_bus"] = MemoryBus(maxlen=app.config["STREAM_MAXLEN"], ttl=app.config["STREAM_TTL"])
    api = client.new()
    api.bearer = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    response = api.post("/v1/chat/completions", {"model": "stumbles/after-one",
                                                 "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502 and response.headers["x-should-retry"] == "false"
    assert response.get_json()["error"] == {
        "code": "provider_failed", "type": "server_error", "param": None,
        "message": f"the provider 'stumbles' (plugin {PLUGIN}) failed: an unexpected error"}


def test_the_failure_is_counted_over_every_process_with_redis(app, client, user, backend, stumbles):
    if backend != "production":
        pytest.skip("the count over every process is kept in Redis")
    with app.app_context():
        before = plugins.total_failure_counts()[0].get(PLUGIN, 0)
    ended(app, answer(client, new_conversation(client, "stumbles/at-once")))
    with app.app_context():
        assert plugins.total_failure_counts()[0][PLUGIN] == before + 1


# ---- conversation settings are provider options -----------------------------------------------

@pytest.mark.parametrize("depth", [0, 6, "deep"])
def test_a_setting_out_of_a_providers_options_is_refused_at_creation(app, client, user, stumbles, depth):
    response = client.post(f"{API}/conversations", {"model": "measured/m", "settings": {"depth": depth}})
    assert "settings.depth" in assert_error(response, 400, "invalid_setting")["message"]
    created = new_conversation(client, "measured/m")
    response = client.patch(f"{API}/conversations/{created}", {"settings": {"depth": depth}})
    assert "settings.depth" in assert_error(response, 400, "invalid_setting")["message"]
    assert client.get(f"{API}/conversations").get_json()["conversations"][0]["settings"] == {}


def test_a_valid_setting_reaches_the_providers_stream_as_an_option(app, client, user, stumbles):
    message = ended(app, answer(client, new_conversation(client, "measured/m", depth=3, temperature=0.5)))
    assert message.status == "complete"
    (options,) = Measured.received
    assert isinstance(options, Depth) and (options.depth, options.temperature) == (3, 0.5)


def test_a_setting_no_installed_provider_knows_is_refused(app, client, user, stumbles):
    response = client.post(f"{API}/conversations", {"model": "measured/m", "settings": {"dpeth": 3}})
    assert "settings.dpeth" in assert_error(response, 400, "unknown_setting")["message"]


def test_the_openai_compatible_api_checks_its_options_against_the_providers_options(app, client, user, stumbles):
    class Cautious(ProviderOptions):
        temperature: float | None = Field(None, ge=0, le=1)

    class CautiousProvider(Measured):
        name = "cautious"
        Options = Cautious

    class CautiousPlugin:
        @hookimpl
        def register_providers(self, register):
            register(CautiousProvider)

    api = client.new()
    api.bearer = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    with plugin_registered(CautiousPlugin(), "bestchat-cautious"):
        response = api.post("/v1/chat/completions", {"model": "cautious/m", "temperature": 1.5,
                                                     "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_setting"
    assert "temperature" in response.get_json()["error"]["message"]
    assert client.get(f"{API}/conversations").get_json()["conversations"] == []  # nothing stored


# ---- listing models ---------------------------------------------------------------------------

class Unlisted(Provider):
    name = "unlisted"
    needs_key = False

    def models(self):
        raise ValueError("the model table is broken")


def test_a_built_in_provider_whose_models_raise_leaves_the_model_list_to_the_others(app, client, user, caplog):
    class UnlistedPlugin:
        @hookimpl
        def register_providers(self, register):
            register(Unlisted)

    with plugin_registered(UnlistedPlugin(), "bestchat-unlisted"):
        before = plugins.failure_counts().get("bestchat-unlisted", 0)
        response = client.get(f"{API}/models")
        assert response.status_code == 200
        listed = [model["id"] for model in response.get_json()["models"]]
        assert "demo/demo" in listed and not any(model.startswith("unlisted/") for model in listed)
        assert plugins.failure_counts()["bestchat-unlisted"] == before + 1
    (logged,) = [record for record in caplog.records if record.exc_info]
    assert isinstance(logged.exc_info[1], ValueError) and "bestchat-unlisted" in logged.getMessage()
