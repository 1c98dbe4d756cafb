"""docs/plugins.md is complete and true: a section titled with each hook's exact signature, code
that compiles, and the tutorial plugin's files quoted exactly as they are in the repository."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from bestchat import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"
TEXT = (DOCS / "plugins.md").read_text()
SIGNATURES = {
    name: f"{name}({', '.join(inspect.signature(function).parameters)})"
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "bestchat_spec")
}


@pytest.mark.parametrize("hook", sorted(SIGNATURES))
def test_every_hook_has_a_section_with_its_signature(hook):
    assert f"\n## {SIGNATURES[hook]}\n" in TEXT


def test_no_section_documents_a_hook_that_does_not_exist():
    documented = re.findall(r"^## (\w+\(.*\))$", TEXT, re.MULTILINE)
    assert sorted(documented) == sorted(SIGNATURES.values())


def test_python_examples_compile():
    blocks = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)
    assert len(blocks) >= len(SIGNATURES)
    for block in blocks:
        compile(block, "docs/plugins.md", "exec")


@pytest.mark.parametrize("name", ["setup.cfg", "pyproject.toml", "bestchat_shout.py", "test_bestchat_shout.py"])
def test_tutorial_quotes_the_plugin_in_the_repository(name):
    assert (DOCS / "tutorial-plugin" / name).read_text() in TEXT
