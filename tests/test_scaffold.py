"""``bestchat plugin new``: the names it derives, what it refuses (writing nothing), and the
package it writes for each kind: the files, the packaging, imports of the plugin API alone,
code that compiles and registers what it says. Installing the package and running its own
tests is tests/integration/test_scaffold_plugins.py."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo

from bestchat.cli import main
from bestchat.scaffold.names import InvalidName, PluginNames, plugin_names
from bestchat.scaffold.writer import FILES, KINDS, ScaffoldRefused, render, write

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "bestchat" / "scaffold" / "templates"
WEATHER = PluginNames(distribution="bestchat-weather", module="bestchat_weather", ident="weather", camel="Weather")
# What each generated file imports, beyond ``from __future__ import annotations``.
MODULE_IMPORTS = {"provider": {"typing", "pydantic", "bestchat.plugin_api"},
                  "tool": {"typing", "bestchat.plugin_api"},
                  "context": {"bestchat.plugin_api"}}
TEST_IMPORTS = {"provider": {"pydantic", "pytest", "bestchat_weather", "bestchat.plugin_api", "bestchat.testing"},
                "tool": {"pytest", "bestchat_weather", "bestchat.plugin_api", "bestchat.testing"},
                "context": {"pytest", "bestchat_weather", "bestchat.plugin_api", "bestchat.testing"}}
# The hook each kind implements, and what it registers.
REGISTERS = {"provider": ("register_providers", "{camel}Provider"), "tool": ("register_tools", "{ident}"),
             "context": ("register_context_strategies", "{camel}Strategy")}


# ---- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("given", ["weather", "bestchat-weather", "bestchat_weather", "BestChat-Weather",
                                   " Weather ", "bestchat..weather"])
def test_a_name_is_normalized_and_prefixed(given):
    assert plugin_names(given) == WEATHER


def test_hyphens_become_underscores_and_capitals():
    assert plugin_names("Word_Count-2") == PluginNames(
        distribution="bestchat-word-count-2", module="bestchat_word_count_2", ident="word_count_2", camel="WordCount2")


@pytest.mark.parametrize(("given", "reason"), [
    ("", "not a distribution name"),
    ("-weather", "not a distribution name"),
    ("wea ther", "not a distribution name"),
    ("wéather", "not a distribution name"),
    ("bestchat", "names BestChat itself"),
    ("bestchat-", "not a distribution name"),
    ("2fa", "must start with a letter"),
    ("bestchat-2fa", "must start with a letter"),
    ("x" * 41, "too long"),
    ("class", "Python keyword"),
    ("hookimpl", "name of the plugin API"),
    ("register-tools", "name of the plugin API"),
])
def test_a_name_that_cannot_name_a_plugin_is_refused(given, reason):
    with pytest.raises(InvalidName, match=reason):
        plugin_names(given)


# ---- the files, for each kind ------------------------------------------------------------------

def imported(source: str) -> set[str]:
    """The modules a Python source imports, anywhere in it (``__future__`` left out)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found.add(node.module)
    return found


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_a_whole_package(kind):
    files = render(kind, WEATHER)
    assert set(files) == {"pyproject.toml", ".gitignore", "README.md", "bestchat_weather.py",
                          "test_bestchat_weather.py"}
    for name, text in files.items():
        assert "$" not in text, f"{name}: a placeholder is left"
        if name.endswith(".py"):
            compile(text, name, "exec")
    assert imported(files["bestchat_weather.py"]) == MODULE_IMPORTS[kind]
    assert imported(files["test_bestchat_weather.py"]) == TEST_IMPORTS[kind]
    readme = files["README.md"]
    for part in ("# bestchat-weather", "## Install", "## Test", "## Develop", "pip install -e .",
                 "python -m pytest", "bestchat_weather.py"):
        assert part in readme


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_packaging_declares_the_entry_point(kind):
    project = tomllib.loads(render(kind, WEATHER)["pyproject.toml"])
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    meta = project["project"]
    assert (meta["name"], meta["version"], meta["requires-python"]) == ("bestchat-weather", "0.1.0", ">=3.11")
    assert meta["description"] == KINDS[kind].description.format(ident="weather")
    assert meta["dependencies"] == list(KINDS[kind].dependencies) and "bestchat" in meta["dependencies"]
    assert meta["optional-dependencies"] == {"test": ["bestchat[test]"]}
    assert meta["entry-points"] == {"bestchat": {"weather": "bestchat_weather"}}
    assert project["tool"]["setuptools"]["py-modules"] == ["bestchat_weather"]
    assert project["tool"]["pytest"]["ini_options"]["testpaths"] == ["test_bestchat_weather.py"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_module_registers_what_it_defines(kind, tmp_path, monkeypatch):
    names = plugin_names(f"scaffold-check-{kind}")
    write(kind, names, tmp_path)
    spec = importlib.util.spec_from_file_location(names.module, tmp_path / f"{names.module}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, names.module, module)
    spec.loader.exec_module(module)
    hook, defined = REGISTERS[kind]
    registered = []
    getattr(module, hook)(register=registered.append)
    defined = getattr(module, defined.format(camel=names.camel, ident=names.ident))
    assert registered == [defined]
    assert getattr(defined, "name", getattr(defined, "__name__", None)) == names.ident


def test_the_templates_ship_with_the_package():
    """Every template is package data (setup.cfg) and in the sdist (MANIFEST.in)."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    pattern = config["options.package_data"]["bestchat.scaffold"].strip()
    shipped = set((REPO / "bestchat" / "scaffold").glob(pattern))
    assert shipped == {path for path in TEMPLATES.rglob("*") if path.is_file()}
    assert "recursive-include bestchat/scaffold/templates *.tmpl" in (REPO / "MANIFEST.in").read_text()
    used = {source.format(kind=kind) for source, _ in FILES for kind in KINDS}
    assert used == {str(path.relative_to(TEMPLATES)) for path in shipped}


# ---- the command -----------------------------------------------------------------------------

def no_app():
    raise AssertionError("the command built an app")


def run(*args: str, monkeypatch):
    """``bestchat ARGS`` in this process, with an app factory that fails if called."""
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")  # (FlaskGroup sets it; restored after the test)
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=no_app))


@pytest.mark.parametrize("group", ["plugin", "plugins"])
def test_the_command_writes_the_package_without_an_app(group, tmp_path, monkeypatch):
    target = tmp_path / "pkg"
    result = run(group, "new", "weather", "--kind", "tool", "--directory", str(target), monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in target.iterdir()) == [
        ".gitignore", "README.md", "bestchat_weather.py", "pyproject.toml", "test_bestchat_weather.py"]
    assert (target / "bestchat_weather.py").read_text() == render("tool", WEATHER)["bestchat_weather.py"]
    assert f"Wrote bestchat-weather, a tool plugin, in {target}" in result.output
    assert f"-m pip install --no-deps --no-build-isolation -e {target}" in result.output and f"-m pytest {target}" in result.output
    # (the same runner does build the app for a command that needs one)
    assert "the command built an app" in repr(run("plugins", "list", monkeypatch=monkeypatch).exception)


def test_the_directory_defaults_to_the_distribution_name_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("plugin", "new", "bestchat_Weather", "--kind", "context", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bestchat-weather" / "bestchat_weather.py").is_file()
    assert "-m pip install --no-deps --no-build-isolation -e bestchat-weather\n" in result.output


def test_an_empty_directory_is_used(tmp_path):
    assert [path.name for path in write("provider", WEATHER, tmp_path)] == [
        "pyproject.toml", ".gitignore", "README.md", "bestchat_weather.py", "test_bestchat_weather.py"]


def test_a_directory_that_is_not_empty_is_refused_untouched(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    result = run("plugin", "new", "weather", "--kind", "provider", "--directory", str(tmp_path),
                 monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert f"Error: {tmp_path} exists and is not empty" in result.output
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "pkg").write_text("")
    with pytest.raises(ScaffoldRefused, match="is not a directory"):
        write("tool", WEATHER, tmp_path / "pkg")


def test_an_invalid_name_or_kind_is_refused_with_nothing_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("plugin", "new", "2fa", "--kind", "tool", monkeypatch=monkeypatch)
    assert result.exit_code == 2
    assert "Invalid value for NAME" in result.output and "start with a letter" in result.output
    result = run("plugin", "new", "weather", "--kind", "model", monkeypatch=monkeypatch)
    assert result.exit_code == 2 and "'model' is not one of 'context', 'provider', 'tool'" in result.output
    result = run("plugin", "new", "weather", monkeypatch=monkeypatch)
    assert result.exit_code == 2 and "Missing option '--kind'" in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_name_of_an_installed_distribution_is_refused(tmp_path, monkeypatch):
    try:
        version = metadata.version("bestchat-demo")
    except metadata.PackageNotFoundError:
        pytest.skip("bestchat-demo is not installed here")
    result = run("plugin", "new", "demo", "--kind", "provider", "--directory", str(tmp_path / "demo"),
                 monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert f"a distribution named bestchat-demo ({version}) is already installed" in result.output
    assert not (tmp_path / "demo").exists()



def test_a_failed_write_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    write_text, calls = Path.write_text, []

    def disk_full_on_the_third_file(path, *args, **kwargs):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return write_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full_on_the_third_file)
    result = run("plugin", "new", "weather", "--kind", "tool", "--directory", str(tmp_path / "pkg"),
                 monkeypatch=monkeypatch)
    assert result.exit_code == 1, result.output
    assert f"Error: cannot write the package into {tmp_path / 'pkg'}: [Errno 28] No space left on device" \
        in result.output
    assert calls == ["pyproject.toml", ".gitignore", "README.md"]
    assert list(tmp_path.iterdir()) == []
