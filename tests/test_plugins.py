"""The plugin system: discovery, settings, error isolation, registries, and one test per hook.

Every hook in ``bestchat.hookspecs`` must have a test here named ``test_hook_<hook name>...``
(``test_every_hook_has_a_test`` enforces it).
"""

from __future__ import annotations

import configparser
import inspect
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Blueprint

from bestchat import create_app, hookspecs, plugins
from bestchat.context.base import ContextStrategy
from bestchat.hookspecs import hookimpl
from bestchat.providers.base import Provider
from bestchat.testing.plugins import plugin_registered, write_distribution
from bestchat.testing.pytest_plugin import make_config
from bestchat.tools.base import Tool

REPO = Path(__file__).resolve().parent.parent
HOOKS = [name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(function, "bestchat_spec")]


@pytest.fixture
def caplog(caplog, monkeypatch):
    """caplog that also works after alembic's fileConfig disabled existing loggers."""
    monkeypatch.setattr(plugins.log, "disabled", False)
    return caplog


def by_name() -> dict[str, dict]:
    return {p["name"]: p for p in plugins.get_plugins()}


@pytest.fixture
def broken_dist(tmp_path, monkeypatch):
    """An installed third-party distribution whose module raises ImportError."""
    directory = tmp_path / "site"
    write_distribution(directory, "bestchat-broken", "bestchat_broken_mod",
                       'raise ImportError("broken on purpose")\n')
    monkeypatch.syspath_prepend(str(directory))
    plugins.unload_plugins()
    try:
        yield "bestchat-broken"
    finally:
        plugins.unload_plugins()
        sys.modules.pop("bestchat_broken_mod", None)


class Recorder:
    """A test plugin whose message filters append a marker and record what they saw."""

    def __init__(self, marker: str):
        self.marker = marker
        self.seen: list = []

    @hookimpl
    def before_generate(self, conversation, messages):
        self.seen.append([m["content"] for m in messages])
        return messages + [{"role": "system", "content": self.marker}]

    @hookimpl
    def after_generate(self, message):
        self.seen.append(message)


class Raising:
    @hookimpl
    def before_generate(self, messages):
        raise RuntimeError("filter exploded")

    @hookimpl
    def after_generate(self, message):
        raise RuntimeError("after exploded")


# ---- discovery and the command line ----------------------------------------------------------

def test_demo_plugin_is_loaded_from_its_entry_point(app):
    demo = by_name()["bestchat-demo"]
    assert demo["status"] == "loaded" and demo["error"] is None
    assert demo["version"] == "0.1.0" and demo["hooks"] == ["register_providers"]
    provider = plugins.get_providers()["demo"]
    assert provider.__module__ == "bestchat_demo" and provider.plugin == "bestchat-demo"


def test_plugins_list_command(runner, backend):
    result = runner.invoke(args=["plugins", "list"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("bestchat-demo"))
    assert line.split() == ["bestchat-demo", "0.1.0", "loaded", "register_providers"]
    assert "    provider demo (demo)" in result.output.splitlines()
    assert "    context strategies: compress, summarize, truncate" in result.output.splitlines()
    listed = json.loads(runner.invoke(args=["plugins", "list", "--json"]).output)
    assert listed["warnings"] == []
    assert {"name": "bestchat-demo", "version": "0.1.0", "hooks": ["register_providers"],
            "status": "loaded", "error": None, "warnings": [],
            "registered": {"providers": [{"name": "demo", "default_models": ["demo"]}], "tools": [],
                           "strategies": []},
            "failures": None if backend == "embedded" else 0} in listed["plugins"]


def test_plugin_failing_on_import_is_reported_and_server_keeps_serving(broken_dist, client, runner):
    broken = by_name()[broken_dist]
    assert broken["status"] == "failed"
    assert broken["error"] == "ImportError: broken on purpose"
    assert by_name()["bestchat-demo"]["status"] == "loaded"
    assert client.get("/healthz").status_code == 200
    output = runner.invoke(args=["plugins", "list"]).output
    assert "bestchat-broken" in output and "failed" in output
    assert "    error: ImportError: broken on purpose" in output.splitlines()


def test_trusted_plugins_are_by_default_every_plugin_in_the_repo(app):
    shipped = set()
    for setup_cfg in (REPO / "plugins").glob("*/setup.cfg"):
        parser = configparser.ConfigParser()
        parser.read(setup_cfg)
        shipped.add(parser["metadata"]["name"])
    assert "bestchat-demo" in shipped
    assert shipped == plugins.FIRST_PARTY == set(app.config["TRUSTED_PLUGINS"])


def test_loading_is_idempotent_and_redone_when_settings_change(app, tmp_path):
    manager = plugins.get_plugin_manager()
    create_app(make_config("embedded", tmp_path / "same"))
    assert plugins.get_plugin_manager() is manager
    create_app(make_config("embedded", tmp_path / "other", BLOCK_PLUGINS="bestchat-demo"))
    assert plugins.get_plugin_manager() is not manager
    assert "demo" not in plugins.get_providers()


# ---- settings: allow-list, safe mode, blocking, tracing ---------------------------------------

@pytest.mark.parametrize("app_config", [{"LOAD_PLUGINS": ""}])
def test_empty_allow_list_loads_nothing(app):
    assert plugins.get_providers() == {}
    assert {p["status"] for p in plugins.get_plugins()} == {"blocked"}
    assert by_name()["bestchat-demo"]["error"] == "not listed in LOAD_PLUGINS"


def test_allow_list_from_environment(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("BESTCHAT_LOAD_PLUGINS", "bestchat-demo")
    create_app(make_config(backend, tmp_path))
    loaded = [p["name"] for p in plugins.get_plugins() if p["status"] == "loaded"]
    assert loaded == ["bestchat-demo"]
    monkeypatch.setenv("BESTCHAT_LOAD_PLUGINS", "")
    create_app(make_config(backend, tmp_path))
    assert plugins.get_providers() == {}


@pytest.mark.parametrize("app_config", [{"SAFE_MODE": True}])
def test_safe_mode_loads_only_first_party_plugins(broken_dist, app):
    assert by_name()[broken_dist]["status"] == "blocked"
    assert by_name()[broken_dist]["error"] == "not in TRUSTED_PLUGINS: not loaded in SAFE_MODE"
    assert by_name()["bestchat-demo"]["status"] == "loaded"
    assert sys.modules.get("bestchat_broken_mod") is None


@pytest.mark.parametrize("app_config", [{"BLOCK_PLUGINS": "bestchat-demo, test-plugin"}])
def test_blocked_plugins_are_not_registered(app):
    assert by_name()["bestchat-demo"]["status"] == "blocked"
    assert "demo" not in plugins.get_providers()
    with plugin_registered(Recorder("x")) as record:
        assert record["status"] == "blocked"
        assert plugins.run_before_generate(None, []) == []


@pytest.mark.parametrize("app_config", [{"TRACE_PLUGINS": True}])
def test_trace_logs_hook_calls(app, caplog):
    with caplog.at_level(logging.INFO, logger="bestchat.plugins"):
        with plugin_registered(Recorder("x")):
            plugins.run_before_generate(None, [])
    assert "hook before_generate(conversation, messages) -> ['test-plugin']" in caplog.text


# ---- registration and error isolation ---------------------------------------------------------

def test_hook_raising_during_registration_fails_only_that_plugin(app):
    class Half(Provider):
        name = "half"

    class Broken:
        @hookimpl
        def register_providers(self, register):
            register(Half)
            raise RuntimeError("half way")

    with plugin_registered(Broken(), "broken") as record:
        assert record["status"] == "failed" and record["error"] == "RuntimeError: half way"
        assert "half" not in plugins.get_providers() and "demo" in plugins.get_providers()
        assert plugins.get_plugin_manager().get_plugin("broken") is None
    assert "broken" not in by_name()


def test_unknown_hook_fails_the_plugin(app):
    class Typo:
        @hookimpl
        def register_provider(self, register):
            raise AssertionError("never called")

    with plugin_registered(Typo(), "typo") as record:
        assert record["status"] == "failed"
        assert record["error"] == "PluginError: unknown hook(s): register_provider"


def test_name_clash_first_registration_wins(app):
    class Impostor(Provider):
        name = "demo"

    class Clashing:
        @hookimpl
        def register_providers(self, register):
            register(Impostor)

    with plugin_registered(Clashing(), "clashing") as record:
        assert record["status"] == "loaded"
        assert record["warnings"] == ["provider 'demo' is already registered by bestchat-demo; ignored"]
        assert plugins.get_providers()["demo"].plugin == "bestchat-demo"


def test_registries_are_copies(app):
    plugins.get_providers().clear()
    assert "demo" in plugins.get_providers()


def test_registries_need_loaded_plugins():
    plugins.unload_plugins()
    with pytest.raises(RuntimeError, match="plugins are not loaded"):
        plugins.get_providers()


# ---- one test per hook -------------------------------------------------------------------------

def test_hook_register_providers(app):
    class Echo(Provider):
        name = "echo"
        needs_key = False

    class EchoPlugin:
        @hookimpl
        def register_providers(self, register):
            register(Echo)

    with plugin_registered(EchoPlugin(), "echo-plugin"):
        assert plugins.get_providers()["echo"] is Echo and Echo.plugin == "echo-plugin"
    assert "echo" not in plugins.get_providers()


def test_hook_register_providers_rejects_non_providers(app):
    class Wrong:
        @hookimpl
        def register_providers(self, register):
            register(object)

    with plugin_registered(Wrong(), "wrong") as record:
        assert record["status"] == "failed" and record["error"].startswith("TypeError: register_providers")


def test_hook_register_tools(app):
    def word_count(text: str, unique: bool = False) -> int:
        """Count the words of a text."""
        return len(set(text.split()) if unique else text.split())

    shell = Tool("shell", "Run a command", {"type": "object", "properties": {}}, print, risk="high")

    class Tools:
        @hookimpl
        def register_tools(self, register):
            register(word_count)
            register(shell)

    with plugin_registered(Tools(), "tools"):
        tools = plugins.get_tools()
        assert tools["word_count"].description == "Count the words of a text."
        assert tools["word_count"].parameters == {
            "type": "object", "required": ["text"], "additionalProperties": False,
            "properties": {"text": {"type": "string"}, "unique": {"type": "boolean"}},
        }
        assert tools["word_count"].function("a b a", unique=True) == 2
        assert tools["shell"].risk == "high"
        assert tools["word_count"].plugin == tools["shell"].plugin == "tools"
    assert "word_count" not in plugins.get_tools() and "shell" not in plugins.get_tools()


def test_hook_register_context_strategies(app):
    class KeepLast(ContextStrategy):
        name = "keep-last"

        def fit(self, messages, max_tokens):
            return messages[-1:]

    class Strategies:
        @hookimpl
        def register_context_strategies(self, register):
            register(KeepLast)

    with plugin_registered(Strategies(), "strategies"):
        strategy = plugins.get_context_strategies()["keep-last"]
        assert strategy.plugin == "strategies"
        assert strategy().fit([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], 10) == [
            {"role": "user", "content": "b"}
        ]
    assert "keep-last" not in plugins.get_context_strategies()


def test_hook_register_blueprints(app, tmp_path):
    bp = Blueprint("hello_plugin", __name__)
    bp.add_url_rule("/hello-plugin", "hello", lambda: "hello from a plugin")

    class Routes:
        @hookimpl
        def register_blueprints(self, app):
            app.register_blueprint(bp)

    class BrokenRoutes:
        @hookimpl
        def register_blueprints(self, app):
            raise RuntimeError("no routes today")

    with plugin_registered(Routes(), "routes"), plugin_registered(BrokenRoutes(), "broken-routes"):
        second = create_app(make_config("embedded", tmp_path / "second"))
    assert second.test_client().get("/hello-plugin").data == b"hello from a plugin"
    assert second.test_client().get("/healthz").status_code == 200


def test_hook_register_admin_views(app):
    class Views:
        @hookimpl
        def register_admin_views(self, admin):
            admin.append("plugin view")

    admin: list[str] = []
    with plugin_registered(Views(), "views"):
        plugins.run_register_admin_views(admin)
    assert admin == ["plugin view"]


def test_hook_before_generate_chains_plugins_and_isolates_errors(app, caplog):
    first, second = Recorder("first"), Recorder("second")
    conversation = SimpleNamespace(id="c1")
    with plugin_registered(first, "first"), plugin_registered(Raising(), "raising"), \
            plugin_registered(second, "second"):
        messages = plugins.run_before_generate(conversation, [{"role": "user", "content": "hi"}])
    # pluggy's order: the latest registered runs first; each sees the previous result.
    assert [m["content"] for m in messages] == ["hi", "second", "first"]
    assert second.seen == [["hi"]] and first.seen == [["hi", "second"]]
    assert "plugin raising: hook before_generate raised; skipped" in caplog.text


def test_hook_before_generate_ignores_results_that_are_not_lists(app):
    class Bad:
        @hookimpl
        def before_generate(self, messages):
            return "not a list"

    with plugin_registered(Bad(), "bad"):
        assert plugins.run_before_generate(None, [{"role": "user", "content": "x"}]) == [
            {"role": "user", "content": "x"}
        ]


def test_hook_after_generate(app, caplog):
    recorder = Recorder("r")
    message = SimpleNamespace(id="m1", content="done")
    with plugin_registered(recorder, "recorder"), plugin_registered(Raising(), "raising"):
        plugins.run_after_generate(message)
    assert recorder.seen == [message]
    assert "plugin raising: hook after_generate raised; skipped" in caplog.text


def test_every_hook_has_a_test():
    assert "register_providers" in HOOKS and "after_generate" in HOOKS
    tests = [name for name in globals() if name.startswith("test_hook_")]
    untested = [hook for hook in HOOKS if not any(t.startswith(f"test_hook_{hook}") for t in tests)]
    assert untested == []

