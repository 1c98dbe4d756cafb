"""The test helpers shipped for plugin authors (``bestchat.testing``): ``plugin_registered``
with and without the plugin installed, ``send_and_wait`` with the shipped fixtures as they are
(on both backends, wherever the app runs its jobs), ``add_provider`` against the ``fake_openai``
server, the package's lazy names, and what ``pip install bestchat[test]`` brings."""

from __future__ import annotations

import configparser
import importlib
import re
import subprocess
import sys
from pathlib import Path

import gevent.event
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bestchat import plugins
from bestchat.dispatch import get_dispatcher
from bestchat.hookspecs import hookimpl
from bestchat.providers.base import Finish, Provider, ProviderUnavailable, TextDelta, Usage
from bestchat.testing import add_provider, plugin_registered, send_and_wait, wait_for_answer, write_distribution
from bestchat.testing.fake_openai import Script
from tests.web_tools import WebToolsPlugin

DEMO = {"model": "demo/demo", "settings": {"tokens_per_second": 0}}
DEMO_REPLY = 'Hello! I am the offline demo model. You said: "{}". Configure a real provider to get real answers.'

TINY_SOURCE = '''
from bestchat.plugin_api import Provider, TextDelta, Finish, hookimpl


class Tiny(Provider):
    name = "tiny"
    needs_key = False
    default_models = ("t",)

    def stream(self, model, messages, *, options=None, tools=None):
        yield TextDelta("installed tiny")
        yield Finish()


@hookimpl
def register_providers(register):
    register(Tiny)
'''


@pytest.fixture
def app_config(request, backend):
    """The settings a test is parametrized with (indirect), else none."""
    config = getattr(request, "param", {})
    if config.get("JOBS_IN_PROCESS") is False and backend != "production":
        pytest.skip("only an app with Redis hands its jobs to Celery")
    return config


def by_name() -> dict[str, dict]:
    return {record["name"]: record for record in plugins.get_plugins()}


class Louder(Provider):
    """Answers with the last user message in capitals; reports usage with a cost."""

    name = "louder"
    needs_key = False
    default_models = ("l",)

    def stream(self, model, messages, *, options=None, tools=None):
        text = messages[-1]["content"]
        for word in text.upper().split():
            yield TextDelta(word + " ")
        yield Usage(prompt_tokens=len(text.split()), completion_tokens=len(text.split()), cost=0.5)
        yield Finish()


class LouderPlugin:
    @hookimpl
    def register_providers(self, register):
        register(Louder)


class OtherTiny(Provider):
    name = "other-tiny"
    needs_key = False


class OtherTinyPlugin:
    @hookimpl
    def register_providers(self, register):
        register(OtherTiny)


# ---- plugin_registered ----------------------------------------------------------------------

@pytest.fixture
def installed(tmp_path, monkeypatch):
    """``bestchat-tiny`` 0.3 installed (its entry point loads module ``bestchat_tiny``)."""
    write_distribution(tmp_path / "site", "bestchat-tiny", "bestchat_tiny", TINY_SOURCE, version="0.3")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    plugins.unload_plugins()
    yield importlib.import_module("bestchat_tiny")
    plugins.unload_plugins()
    sys.modules.pop("bestchat_tiny", None)


@pytest.fixture
def installed_app(installed, app):
    """The app, created with ``bestchat-tiny`` installed."""
    assert by_name()["bestchat-tiny"]["version"] == "0.3"
    return app


def test_a_plugin_that_is_not_installed_is_registered_for_the_block(app):
    with plugin_registered(LouderPlugin(), "bestchat-louder") as record:
        assert record["status"] == "loaded" and record["name"] == "bestchat-louder"
        assert plugins.get_providers()["louder"].plugin == "bestchat-louder"
    assert "louder" not in plugins.get_providers() and "bestchat-louder" not in by_name()


def test_a_block_that_raises_still_unregisters(app):
    with pytest.raises(RuntimeError, match="inside"):
        with plugin_registered(LouderPlugin(), "bestchat-louder"):
            raise RuntimeError("inside")
    assert "louder" not in plugins.get_providers()


def test_the_installed_plugin_itself_is_left_registered(installed, installed_app):
    with plugin_registered(installed, "bestchat-tiny") as record:
        assert record["status"] == "loaded" and record["version"] == "0.3"
        assert plugins.get_providers()["tiny"] is installed.Tiny
    assert plugins.get_providers()["tiny"] is installed.Tiny
    assert by_name()["bestchat-tiny"]["version"] == "0.3"


def test_another_object_under_an_installed_name_takes_its_place_for_the_block(installed, installed_app):
    with plugin_registered(OtherTinyPlugin(), "bestchat-tiny") as record:
        assert record["status"] == "loaded"
        providers = plugins.get_providers()
        assert "tiny" not in providers and providers["other-tiny"].plugin == "bestchat-tiny"
    providers = plugins.get_providers()
    assert providers["tiny"] is installed.Tiny and "other-tiny" not in providers
    assert by_name()["bestchat-tiny"]["version"] == "0.3"
    assert plugins.get_plugin_manager().get_plugin("bestchat-tiny") is installed


def test_the_installed_plugin_under_another_name_is_moved_for_the_block(installed, installed_app):
    with plugin_registered(installed, "tiny-under-test") as record:
        assert record["status"] == "loaded"
        assert "bestchat-tiny" not in by_name()
        assert plugins.get_providers()["tiny"].plugin == "tiny-under-test"
    assert "tiny-under-test" not in by_name()
    assert plugins.get_providers()["tiny"].plugin == "bestchat-tiny"
    assert by_name()["bestchat-tiny"]["version"] == "0.3"


def test_nested_registrations_under_one_name_restore_the_outer_one(app):
    outer, inner = LouderPlugin(), OtherTinyPlugin()
    with plugin_registered(outer, "under-test"):
        with plugin_registered(inner, "under-test"):
            assert "louder" not in plugins.get_providers() and "other-tiny" in plugins.get_providers()
        assert plugins.get_plugin_manager().get_plugin("under-test") is outer
        assert "louder" in plugins.get_providers() and "other-tiny" not in plugins.get_providers()
    assert "under-test" not in by_name()


# ---- send_and_wait: the shipped fixtures as they are, on both backends -----------------------

def test_send_and_wait_returns_the_stored_answer_of_the_demo_provider(client, user):
    answer = send_and_wait(client, "two words", **DEMO)
    assert answer["status"] == "complete" and answer["error"] is None
    assert answer["content"] == DEMO_REPLY.format("two words")
    assert answer["role"] == "assistant" and (answer["provider"], answer["model"]) == ("demo", "demo/demo")
    assert answer["usage"]["prompt_tokens"] == 2 and answer["usage"]["completion_tokens"] > 2
    assert answer["tool_executions"] == []
    again = send_and_wait(client, "more words", conversation_id=answer["conversation_id"])
    assert again["content"] == DEMO_REPLY.format("more words")
    assert again["conversation_id"] == answer["conversation_id"] and again["parent_id"] != answer["parent_id"]
    listed = client.get(f"/api/v1/conversations/{answer['conversation_id']}/messages").get_json()["messages"]
    assert [m["content"] for m in listed if m["role"] == "assistant"] == [answer["content"], again["content"]]


def test_send_and_wait_with_a_provider_plugin_registered_for_the_test(client, user):
    with plugin_registered(LouderPlugin(), "bestchat-louder"):
        answer = send_and_wait(client, "say it loud", model="louder/l")
    assert (answer["status"], answer["content"]) == ("complete", "SAY IT LOUD ")
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "cost": 0.5}


def test_a_failed_answer_is_returned_with_its_error(client, user):
    class Down(Provider):
        name = "down"
        needs_key = False
        default_models = ("d",)

        def stream(self, model, messages, *, options=None, tools=None):
            yield TextDelta("partial ")
            raise ProviderUnavailable("the upstream went away")

    class DownPlugin:
        @hookimpl
        def register_providers(self, register):
            register(Down)

    with plugin_registered(DownPlugin(), "bestchat-down"):
        answer = send_and_wait(client, "hello", model="down/d")
    assert answer["status"] == "failed" and answer["error_code"] == "provider_unavailable" and answer["error"]


def test_an_answer_that_does_not_finish_is_a_timeout_naming_its_state(app, client, user):
    release, ended = gevent.event.Event(), []

    class Stuck(Provider):
        name = "stuck"
        needs_key = False
        default_models = ("s",)

        def stream(self, model, messages, *, options=None, tools=None):
            try:
                yield TextDelta("so far")
                release.wait()  # never set
                yield Finish()
            finally:
                ended.append(True)

    class StuckPlugin:
        @hookimpl
        def register_providers(self, register):
            register(Stuck)

    with plugin_registered(StuckPlugin(), "bestchat-stuck"):
        with pytest.raises(TimeoutError, match=r"is still 'streaming' after 0.2 s"):
            send_and_wait(client, "hello", model="stuck/s", timeout=0.2)
    # A job the wait started itself (jobs handed to Celery) is stopped with it; the app's own
    # pool keeps its job until the app fixture ends.
    assert ended == ([] if get_dispatcher(app).in_process else [True])


def test_a_refused_request_is_an_assertion_error_with_the_servers_error(client, user):
    with pytest.raises(AssertionError, match="creating the conversation: HTTP 400.*unknown_setting"):
        send_and_wait(client, "hello", model="demo/demo", settings={"no_such_option": 1})
    with pytest.raises(AssertionError, match="sending the message: HTTP 400.*missing_field"):
        send_and_wait(client, "", **DEMO)


def test_an_unknown_model_is_a_failed_answer(client, user):
    answer = send_and_wait(client, "hello", model="nowhere/nothing")
    assert (answer["status"], answer["error_code"]) == ("failed", "unknown_model")
    assert answer["usage"] is None  # no provider was called


def test_settings_need_a_new_conversation(client, user):
    answer = send_and_wait(client, "hi", **DEMO)
    with pytest.raises(ValueError, match="settings apply to a new conversation"):
        send_and_wait(client, "hi", conversation_id=answer["conversation_id"], settings={"tokens_per_second": 0})


def test_wait_for_answer_after_a_regenerate(client, user):
    first = send_and_wait(client, "again please", **DEMO)
    regenerated = client.post(f"/api/v1/messages/{first['id']}/regenerate").get_json()["assistant_message"]
    answer = wait_for_answer(client, regenerated["id"])
    assert answer["status"] == "complete" and answer["content"] == first["content"]
    assert answer["id"] != first["id"] and answer["parent_id"] == first["parent_id"]


def test_an_answer_waiting_for_a_tool_approval_is_returned_and_waited_for_after(client, user):
    with plugin_registered(WebToolsPlugin(), "web-tools"):
        answer = send_and_wait(client, '[[shout {"text": "hi"}]]', **DEMO)  # the demo model calls it
        assert answer["status"] == "waiting"
        (call,) = answer["tool_executions"]
        assert (call["tool"], call["status"]) == ("shout", "pending_approval")
        assert client.post(f"/api/v1/tool-executions/{call['id']}/approve").status_code == 200
        done = wait_for_answer(client, answer["id"])
    assert done["status"] == "complete"
    assert [(c["tool"], c["status"]) for c in done["tool_executions"]] == [("shout", "succeeded")]


@pytest.mark.parametrize("app_config", [{"JOBS_IN_PROCESS": True}, {"JOBS_IN_PROCESS": False}], indirect=True,
                         ids=["jobs-in-process", "jobs-for-celery"])
def test_send_and_wait_wherever_the_app_runs_its_jobs(app, client, user):
    """The app's own pool runs the job, or (jobs handed to Celery, no worker) the wait runs it."""
    answer = send_and_wait(client, "two words", **DEMO)
    assert (answer["status"], answer["content"]) == ("complete", DEMO_REPLY.format("two words"))
    assert get_dispatcher(app).in_process is app.config["JOBS_IN_PROCESS"]


# ---- fake_openai and add_provider ------------------------------------------------------------

def test_a_provider_config_pointed_at_the_fake_server(client, user, fake_openai):
    if "openai" not in plugins.get_providers():
        pytest.skip("bestchat-openai is not installed")
    config = add_provider(client, "openai", base_url=fake_openai.url, api_key="sk-test-key")
    assert config["discovered_models"] == ["gpt-4o-mini", "fake-model"]
    fake_openai.enqueue(Script(content="Scripted answer."))
    answer = send_and_wait(client, "hello", model="openai/fake-model")
    assert (answer["status"], answer["content"]) == ("complete", "Scripted answer.")
    request = fake_openai.requests[-1]
    assert request.headers["authorization"] == "Bearer sk-test-key"
    assert request.body["model"] == "fake-model" and request.body["messages"][-1]["content"] == "hello"
    with pytest.raises(AssertionError, match="saving the provider config: HTTP 400"):
        add_provider(client, "no-such-provider")


# ---- the package ------------------------------------------------------------------------------

def test_every_public_name_of_bestchat_testing_resolves():
    import bestchat.testing as testing

    assert sorted(testing.__all__) == sorted(testing._SOURCES)
    for name in testing.__all__:
        assert getattr(testing, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        testing.nope  # noqa: B018


def test_the_fake_server_alone_stays_out_of_the_web_stack():
    """``python -m bestchat.testing.fake_openai`` (benchmarks) imports no Flask."""
    code = "import sys, bestchat.testing.fake_openai; print('flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


# ---- pip install bestchat[test] ----------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def test_the_test_extra_is_what_the_dev_lock_installs():
    """Everything ``bestchat[test]`` asks for is pinned in requirements/dev.txt (what
    ``make install-dev`` installs), in a version the extra accepts."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    wanted = [Requirement(line) for line in setup["options.extras_require"]["test"].split("\n") if line.strip()]
    lock = (REPO / "requirements" / "dev.txt").read_text()
    pins = {canonicalize_name(name): version
            for name, version in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock, re.MULTILINE)}
    assert {canonicalize_name(r.name) for r in wanted} >= {"pytest", "pytest-timeout"}
    for requirement in wanted:
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not pinned in requirements/dev.txt"
        assert requirement.specifier.contains(pinned), (requirement, pinned)
