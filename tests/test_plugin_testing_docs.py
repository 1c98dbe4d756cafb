"""docs/plugin-testing.md is complete and true: its examples are the files of
docs/plugin-testing/ (which pytest runs with this suite), quoted whole, importing from BestChat
only what a plugin may; every shipped fixture has its entry; the signatures it gives are the
helpers' own."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import bestchat.testing
from bestchat.testing import pytest_plugin
from tests.test_plugin_api import allowed, bestchat_imports

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDE = (DOCS / "plugin-testing.md").read_text()
EXAMPLES = sorted((DOCS / "plugin-testing").glob("*.py"))
# Fixtures of the pytest plugin that are its own machinery, not for tests to request.
INTERNAL_FIXTURES = {"pg_schema"}


def signature(function) -> str:
    """``name(a, b, *, c=None)``: the call as the guide writes it (no annotations)."""
    parameters = [parameter.replace(annotation=inspect.Parameter.empty)
                  for parameter in inspect.signature(function).parameters.values()]
    return f"{function.__name__}{inspect.Signature(parameters)}"


def test_the_examples_are_found():
    assert {"bestchat_relay.py", "test_bestchat_relay.py", "test_relay_settings.py", "test_relay_installed.py",
            "test_pinned_strategy.py"} <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_each_example_is_quoted_whole(path):
    assert f"```python\n{path.read_text()}```" in GUIDE


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_each_example_imports_only_the_plugin_api_and_the_test_helpers(path):
    is_test = path.name.startswith("test_")
    assert [module for module in bestchat_imports(path) if not allowed(module, is_test)] == []


def test_every_shipped_fixture_has_its_entry():
    fixtures = {name for name, value in vars(pytest_plugin).items()
                if hasattr(value, "_fixture_function_marker")} - INTERNAL_FIXTURES
    assert fixtures == {"app", "app_config", "client", "user", "runner", "backend", "fake_openai"}
    for name in fixtures:
        assert f"\n- `{name}`: " in GUIDE, name


@pytest.mark.parametrize("name", ["send_and_wait", "wait_for_answer", "add_provider", "plugin_registered",
                                  "write_distribution"])
def test_the_helpers_are_documented_with_their_signatures(name):
    assert name in bestchat.testing.__all__
    assert f"`{signature(getattr(bestchat.testing, name))}`" in GUIDE
