"""``bestchat.plugin_api`` is the one import a plugin needs: every public name resolves, the
first-party plugins import nothing else from ``bestchat`` (their tests add only
``bestchat.testing``), and a tool's sandboxed process importing it stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bestchat.plugin_api as plugin_api

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial-plugin"
SOURCES = sorted([*PLUGINS.glob("*/*.py"), *TUTORIAL.glob("*.py")])
# What a plugin's own tests may import from bestchat besides the plugin API.
TESTING = "bestchat.testing"


def bestchat_imports(path: Path) -> list[str]:
    """Every ``bestchat`` module the file imports (``from bestchat import x`` counts as
    ``bestchat.x``), wherever the import statement is (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "bestchat"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "bestchat":
            found += [f"{node.module}.{alias.name}" if node.module == "bestchat" else node.module
                      for alias in node.names]
    return found


def allowed(module: str, is_test: bool) -> bool:
    if module == "bestchat.plugin_api":
        return True
    return is_test and (module == TESTING or module.startswith(TESTING + "."))


def test_the_sources_are_found():
    names = {path.name for path in SOURCES}
    assert {"bestchat_openai.py", "bestchat_litellm.py", "bestchat_demo.py", "bestchat_tools.py",
            "bestchat_context.py", "bestchat_shout.py", "test_bestchat_openai.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_plugins_import_only_the_plugin_api(path):
    is_test = path.name.startswith("test_") or path.name == "conftest.py"
    others = [module for module in bestchat_imports(path) if not allowed(module, is_test)]
    assert others == [], f"{path} imports {others}; use bestchat.plugin_api" + \
        (" or bestchat.testing" if is_test else "")


def test_the_checker_sees_every_form_of_import(tmp_path):
    source = tmp_path / "bestchat_x.py"
    source.write_text("import bestchat.plugins\nfrom bestchat import hookspecs\n"
                      "def f():\n    from bestchat.providers.base import Provider\n"
                      "from bestchat.plugin_api import hookimpl\n")
    found = bestchat_imports(source)
    assert sorted(found) == ["bestchat.hookspecs", "bestchat.plugin_api", "bestchat.plugins",
                             "bestchat.providers.base"]
    assert sorted(m for m in found if not allowed(m, False)) == [
        "bestchat.hookspecs", "bestchat.plugins", "bestchat.providers.base"]


@pytest.mark.parametrize("name", plugin_api.__all__)
def test_every_public_name_resolves(name):
    assert getattr(plugin_api, name) is not None
    assert name in dir(plugin_api)


def test_names_are_the_core_objects():
    from bestchat.hookspecs import hookimpl
    from bestchat.providers.base import Provider
    from bestchat.security.outbound import Policy

    assert plugin_api.hookimpl is hookimpl
    assert plugin_api.Provider is Provider
    assert plugin_api.OutboundPolicy is Policy


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        plugin_api.Nope  # noqa: B018


def test_a_tool_plugin_import_stays_out_of_the_web_stack():
    """A tool runs in a fresh sandboxed process per call: importing what a tool module needs
    must not drag in Flask, Flask-Admin, SQLAlchemy, Celery or httpx."""
    code = ("import sys\n"
            "from bestchat.plugin_api import hookimpl, Tool, tool, tool_context, OutboundPolicy, OutboundRules\n"
            "print(','.join(m for m in ('flask', 'flask_admin', 'sqlalchemy', 'celery', 'httpx') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
