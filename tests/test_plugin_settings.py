"""Plugin settings and loading as an operator meets them: strict booleans (from the
environment and a settings file), PEP 503 names in LOAD_PLUGINS / BLOCK_PLUGINS /
BLOCKED_PLUGINS with warnings for names that match nothing, TRUSTED_PLUGINS, a plugin that
exits (``SystemExit``) isolated like any failure, modules without ``@hookimpl``, and what
``bestchat plugins list`` shows of all of it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from bestchat import create_app, plugins
from bestchat.hookspecs import hookimpl
from bestchat.settings import ConfigurationError
from bestchat.testing.plugins import plugin_registered, write_distribution
from bestchat.testing.pytest_plugin import make_config

TINYSTREAM = '''
from bestchat.plugin_api import Finish, Provider, TextDelta, hookimpl


class TinyStream(Provider):
    name = "tinystream"
    needs_key = False
    default_models = ("tiny",)

    def stream(self, model, messages, *, options=None, tools=None):
        yield TextDelta("tiny")
        yield Finish()


@hookimpl
def register_providers(register):
    register(TinyStream)
'''


@pytest.fixture
def caplog(caplog, monkeypatch):
    """caplog that also works after alembic's fileConfig disabled existing loggers."""
    monkeypatch.setattr(plugins.log, "disabled", False)
    return caplog


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(distribution, module, source)``: an installed third-party distribution whose
    entry point is ``module``, discovered by the next app created."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules = []

    def install(name: str, module: str, source: str) -> str:
        write_distribution(site, name, module, source)
        modules.append(module)
        plugins.unload_plugins()
        return name

    try:
        yield install
    finally:
        plugins.unload_plugins()
        for module in modules:
            sys.modules.pop(module, None)


@pytest.fixture
def tinystream(install):
    """An installed third-party plugin ``bestchat-tinystream`` (provider ``tinystream``)."""
    return install("bestchat-tinystream", "bestchat_tinystream_mod", TINYSTREAM)


def statuses() -> dict[str, str]:
    return {p["name"]: p["status"] for p in plugins.get_plugins()}


def listed(runner) -> dict:
    result = runner.invoke(args=["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# ---- strict booleans ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["False", "false", "no", "NO", "0", "off", " No "])
def test_safe_mode_written_as_false_in_any_accepted_way_is_off(tinystream, tmp_path, monkeypatch, value):
    monkeypatch.setenv("BESTCHAT_SAFE_MODE", value)
    app = create_app(make_config("embedded", tmp_path))
    assert app.config["SAFE_MODE"] is False
    assert statuses()[tinystream] == "loaded" and "tinystream" in plugins.get_providers()


@pytest.mark.parametrize("value", ["True", "true", "yes", "YES", "1", "on"])
def test_safe_mode_written_as_true_in_any_accepted_way_is_on(tinystream, tmp_path, monkeypatch, value):
    monkeypatch.setenv("BESTCHAT_SAFE_MODE", value)
    app = create_app(make_config("embedded", tmp_path))
    assert app.config["SAFE_MODE"] is True
    assert statuses()[tinystream] == "blocked" and statuses()["bestchat-demo"] == "loaded"


@pytest.mark.parametrize("value, shown", [("maybe", "'maybe'"), ("2", "2"), ("", "''"), ("[]", "[]")])
def test_a_boolean_that_is_not_one_refuses_to_start_naming_the_variable(tmp_path, monkeypatch, value, shown):
    monkeypatch.setenv("BESTCHAT_SAFE_MODE", value)
    with pytest.raises(ConfigurationError) as raised:
        create_app(make_config("embedded", tmp_path))
    assert str(raised.value) == ("refusing to start: BESTCHAT_SAFE_MODE must be a boolean "
                                 f"(true/false/1/0/yes/no/on/off, any case), not {shown}")


def test_every_boolean_setting_is_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTCHAT_TRACE_PLUGINS", "no")
    monkeypatch.setenv("BESTCHAT_WORKER_KEEP_CLOUD_CREDENTIALS", "No")
    monkeypatch.setenv("BESTCHAT_SESSION_COOKIE_SECURE", "yes")
    app = create_app(make_config("embedded", tmp_path))
    assert app.config["TRACE_PLUGINS"] is False and app.config["WORKER_KEEP_CLOUD_CREDENTIALS"] is False
    assert app.config["SESSION_COOKIE_SECURE"] is True
    monkeypatch.setenv("BESTCHAT_SESSION_COOKIE_HTTPONLY", "nope")
    with pytest.raises(ConfigurationError, match="BESTCHAT_SESSION_COOKIE_HTTPONLY must be a boolean"):
        create_app(make_config("embedded", tmp_path))


def test_optional_booleans_are_strict_too(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTCHAT_REGISTRATION_OPEN", "no")
    assert create_app(make_config("embedded", tmp_path)).config["REGISTRATION"] == "closed"
    monkeypatch.delenv("BESTCHAT_REGISTRATION_OPEN")
    monkeypatch.setenv("BESTCHAT_JOBS_IN_PROCESS", "No")
    # Off means Celery workers, which need Redis: the setting was read as False, not as text.
    with pytest.raises(ConfigurationError, match="JOBS_IN_PROCESS=0 needs REDIS_URL"):
        create_app(make_config("embedded", tmp_path))
    monkeypatch.setenv("BESTCHAT_JOBS_IN_PROCESS", "sometimes")
    with pytest.raises(ConfigurationError, match="BESTCHAT_JOBS_IN_PROCESS must be a boolean"):
        create_app(make_config("embedded", tmp_path))


def test_a_settings_file_is_held_to_the_same_rule(tinystream, tmp_path, monkeypatch):
    settings = tmp_path / "settings.py"
    settings.write_text('SAFE_MODE = "off"\n')
    monkeypatch.setenv("BESTCHAT_CONFIG", str(settings))
    assert create_app(make_config("embedded", tmp_path)).config["SAFE_MODE"] is False
    assert statuses()[tinystream] == "loaded"
    settings.write_text('SAFE_MODE = "sometimes"\n')
    with pytest.raises(ConfigurationError) as raised:
        create_app(make_config("embedded", tmp_path))
    assert str(raised.value).startswith("refusing to start: SAFE_MODE must be a boolean")


def test_the_command_line_prints_the_error_in_one_line_and_fails(tmp_path):
    env = {"BESTCHAT_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin", "BESTCHAT_SAFE_MODE": "maybe"}
    if os.environ.get("PYTHONPATH"):  # a checkout run without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    result = subprocess.run([f"{sys.prefix}/bin/bestchat", "plugins", "list"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == ("refusing to start: BESTCHAT_SAFE_MODE must be a boolean "
                                              "(true/false/1/0/yes/no/on/off, any case), not 'maybe'")


# ---- names: normalized, and warned about when they match nothing --------------------------------

@pytest.mark.parametrize("name", ["bestchat_tinystream", "BestChat-TinyStream", "bestchat.tinystream",
                                  " BESTCHAT__TINYSTREAM "])
def test_block_plugins_matches_the_normalized_name(tinystream, tmp_path, name):
    create_app(make_config("embedded", tmp_path, BLOCK_PLUGINS=f"{name},bestchat-tools"))
    assert statuses()[tinystream] == "blocked" and statuses()["bestchat-tools"] == "blocked"
    assert statuses()["bestchat-demo"] == "loaded"
    assert "tinystream" not in plugins.get_providers()
    assert plugins.setting_warnings() == []


def test_load_plugins_matches_the_normalized_names(tinystream, tmp_path, monkeypatch):
    monkeypatch.setenv("BESTCHAT_LOAD_PLUGINS", "BestChat_TinyStream, bestchat.Demo")
    create_app(make_config("embedded", tmp_path))
    assert [name for name, status in statuses().items() if status == "loaded"] == [
        "bestchat-demo", "bestchat-tinystream"]
    assert sorted(plugins.get_providers()) == ["demo", "tinystream"]


def test_admin_blocked_names_are_normalized(tinystream, tmp_path):
    create_app(make_config("embedded", tmp_path, BLOCKED_PLUGINS=["BestChat_TinyStream"]))
    assert statuses()[tinystream] == "blocked"
    assert next(p for p in plugins.get_plugins() if p["name"] == tinystream)["error"] == "blocked by an admin"


@pytest.mark.parametrize("app_config", [{"BLOCK_PLUGINS": "My_Filter"}])
def test_a_registered_plugin_is_blocked_by_its_normalized_name(app):
    assert plugins.setting_warnings() == ["BLOCK_PLUGINS: 'my-filter' matches no installed plugin"]

    class Filter:
        @hookimpl
        def before_generate(self, messages):
            return messages + [{"role": "system", "content": "filtered"}]

    with plugin_registered(Filter(), "my-filter") as record:
        assert record["status"] == "blocked" and record["error"] == "blocked by BLOCK_PLUGINS"
        assert plugins.run_before_generate(None, []) == []
        assert plugins.setting_warnings() == []  # registered now, so the name matches


def test_names_that_match_no_plugin_are_warned_about(tinystream, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="bestchat.plugins"):
        app = create_app(make_config("embedded", tmp_path, LOAD_PLUGINS="bestchat-demo,bestchat-tinystreem,demo",
                                     BLOCK_PLUGINS="bestchat-nothing-like-it"))
    warnings = [
        "LOAD_PLUGINS: 'bestchat-tinystreem' matches no installed plugin (did you mean 'bestchat-tinystream'?)",
        "LOAD_PLUGINS: 'demo' matches no installed plugin (did you mean 'bestchat-demo'?)",
        "BLOCK_PLUGINS: 'bestchat-nothing-like-it' matches no installed plugin",
    ]
    assert plugins.setting_warnings() == warnings
    for warning in warnings:
        assert f"plugin settings: {warning}" in caplog.text
    # The typo does not block or allow anything else: only the names that match count.
    assert [name for name, status in statuses().items() if status == "loaded"] == ["bestchat-demo"]
    runner = app.test_cli_runner()
    assert listed(runner)["warnings"] == warnings
    text = runner.invoke(args=["plugins", "list"]).output.splitlines()
    assert text[text.index("Plugin settings:") + 1:][:3] == [f"    warning: {warning}" for warning in warnings]


@pytest.mark.parametrize("app_config", [{"BLOCK_PLUGINS": "bestchat_demo, bestchat-unheard-of"}])
def test_the_admin_console_shows_the_warnings(admin):
    page = admin.get("/admin/plugins/").get_data(as_text=True)
    assert ('<div class="alert alert-warning">Plugin settings: BLOCK_PLUGINS: '
            '&#39;bestchat-unheard-of&#39; matches no installed plugin</div>') in page
    assert "blocked by BLOCK_PLUGINS (environment): not changeable here" in page  # bestchat_demo


# ---- TRUSTED_PLUGINS -----------------------------------------------------------------------------

def test_safe_mode_loads_the_trusted_plugins_named_in_the_setting(tinystream, tmp_path, monkeypatch):
    monkeypatch.setenv("BESTCHAT_TRUSTED_PLUGINS", "bestchat-demo, BestChat_TinyStream")
    create_app(make_config("embedded", tmp_path, SAFE_MODE=True))
    assert {name for name, status in statuses().items() if status == "loaded"} == {"bestchat-demo", tinystream}
    tools = next(p for p in plugins.get_plugins() if p["name"] == "bestchat-tools")
    assert tools["status"] == "blocked" and tools["error"] == "not in TRUSTED_PLUGINS: not loaded in SAFE_MODE"


def test_trusted_plugins_load_first_and_keep_their_names(install, tmp_path):
    # Sorted by name it would load before bestchat-demo and take the provider name "demo".
    install("aaa-impostor", "aaa_impostor_mod", TINYSTREAM.replace('"tinystream"', '"demo"'))
    create_app(make_config("embedded", tmp_path))
    assert list(statuses())[-1] == "aaa-impostor"
    assert plugins.get_providers()["demo"].plugin == "bestchat-demo"
    impostor = next(p for p in plugins.get_plugins() if p["name"] == "aaa-impostor")
    assert impostor["warnings"] == ["provider 'demo' is already registered by bestchat-demo; ignored"]

    create_app(make_config("embedded", tmp_path, TRUSTED_PLUGINS=["aaa-impostor"]))
    assert list(statuses())[0] == "aaa-impostor"
    assert plugins.get_providers()["demo"].plugin == "aaa-impostor"


# ---- exceptions that are not Exception ----------------------------------------------------------

def test_a_plugin_calling_sys_exit_at_import_fails_alone(install, tmp_path, runner):
    name = install("bestchat-quitter", "bestchat_quitter_mod", 'import sys\nsys.exit("not today")\n')
    app = create_app(make_config("embedded", tmp_path))
    quitter = next(p for p in plugins.get_plugins() if p["name"] == name)
    assert quitter["status"] == "failed" and quitter["error"] == "SystemExit: not today"
    assert app.test_client().get("/healthz").status_code == 200
    assert "demo" in plugins.get_providers()


def test_a_plugin_calling_sys_exit_in_a_register_hook_fails_alone(install, tmp_path):
    source = ("import sys\nfrom bestchat.plugin_api import hookimpl\n\n\n"
              "@hookimpl\ndef register_tools(register):\n    sys.exit(3)\n")
    name = install("bestchat-exiter", "bestchat_exiter_mod", source)
    app = create_app(make_config("embedded", tmp_path))
    exiter = next(p for p in plugins.get_plugins() if p["name"] == name)
    assert exiter["status"] == "failed" and exiter["error"] == "SystemExit: 3"
    assert app.test_client().get("/healthz").status_code == 200
    assert plugins.get_plugin_manager().get_plugin(name) is None


def test_a_message_filter_calling_sys_exit_is_skipped_and_counted(app):
    class Exiting:
        @hookimpl
        def after_generate(self, message):
            raise SystemExit("filter quits")

    before = plugins.failure_counts().get("exiting", 0)
    with plugin_registered(Exiting(), "exiting"), app.app_context():
        plugins.run_after_generate(None)
    assert plugins.failure_counts()["exiting"] == before + 1


def test_keyboard_interrupt_still_stops_the_process(app):
    class Interrupted:
        @hookimpl
        def register_providers(self, register):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plugins.register_plugin(Interrupted(), "interrupted")
    assert "interrupted" not in statuses()
    assert plugins.get_plugin_manager().get_plugin("interrupted") is None


# ---- modules without hook implementations ------------------------------------------------------

def test_a_module_without_hookimpl_loads_with_a_warning_naming_its_functions(install, tmp_path, caplog):
    source = "def register_providers(register):\n    pass\n\n\ndef helper():\n    pass\n"
    name = install("bestchat-undecorated", "bestchat_undecorated_mod", source)
    with caplog.at_level(logging.WARNING, logger="bestchat.plugins"):
        app = create_app(make_config("embedded", tmp_path))
    warning = ("no hook implementations found: decorate hook functions with @hookimpl "
               "(not decorated: register_providers)")
    record = next(p for p in plugins.get_plugins() if p["name"] == name)
    assert record["status"] == "loaded" and record["hooks"] == [] and record["warnings"] == [warning]
    assert f"plugin {name}: {warning}" in caplog.text
    output = app.test_cli_runner().invoke(args=["plugins", "list"]).output.splitlines()
    row = next(i for i, line in enumerate(output) if line.startswith(name))
    assert output[row + 1] == f"    warning: {warning}"


def test_undecorated_hook_functions_next_to_decorated_ones_are_named(app):
    class Half:
        @hookimpl
        def register_tools(self, register):
            pass

        def after_generate(self, message):
            raise AssertionError("never called")

    class Empty:
        pass

    with plugin_registered(Half(), "half") as half, plugin_registered(Empty(), "empty") as empty:
        assert half["status"] == "loaded"
        assert half["warnings"] == ["not decorated with @hookimpl, so never called: after_generate"]
        assert empty["warnings"] == ["no hook implementations found: decorate hook functions with @hookimpl"]


# ---- runtime failures in `bestchat plugins list` --------------------------------------------------

def test_plugins_list_shows_the_failures_counted_in_redis(app, runner, backend):
    if backend == "production":
        assert runner.invoke(args=["plugins", "list"]).output.splitlines()[-1] == (
            "Runtime failures: counted in Redis over every web and worker process; none so far.")
    with app.app_context():
        plugins.count_failure("bestchat-demo")
        plugins.count_failure("bestchat-demo")
    found = listed(runner)
    demo = next(p for p in found["plugins"] if p["name"] == "bestchat-demo")
    tools = next(p for p in found["plugins"] if p["name"] == "bestchat-tools")
    text = runner.invoke(args=["plugins", "list"]).output.splitlines()
    demo_lines = text[text.index(next(line for line in text if line.startswith("bestchat-demo"))):][:3]
    if backend == "embedded":
        # This command's own process failed nothing; without Redis there is no total to show.
        assert demo["failures"] is None and found["failures_since"] is None
        assert "    failures: 2" not in text
        assert text[-1].startswith("Runtime failures: not shown. Without Redis each process counts its own")
    else:
        assert demo["failures"] == 2 and tools["failures"] == 0 and found["failures_since"] > 0
        assert demo_lines[1:] == ["    provider demo (demo)", "    failures: 2"]
        assert text[-1].startswith("Runtime failures: counted in Redis over every web and worker process since ")


def test_plugins_list_says_so_when_redis_does_not_answer(tmp_path):
    app = create_app(make_config("embedded", tmp_path, REDIS_URL="redis://127.0.0.1:1/0", JOBS_IN_PROCESS=True))
    result = app.test_cli_runner().invoke(args=["plugins", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("Runtime failures: not shown, Redis did not answer (")
    assert "    provider demo (demo)" in result.output.splitlines()
