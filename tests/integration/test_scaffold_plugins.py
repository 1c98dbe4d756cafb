"""A plugin made by ``bestchat plugin new``, as its author would take it: for each kind, the real
command writes the package, pip builds and installs it (into a directory of its own, never into
this environment), ``bestchat plugins list --json`` shows it loaded with what it registered, and
its own tests pass, installed or not. Only the embedded backend: the generated tests' fixtures
are BestChat's, tested on PostgreSQL and Redis by the rest of the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bestchat.settings import REPO_ROOT

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
PLUGIN_DIRS = sorted(str(path.parent) for path in (REPO_ROOT / "plugins").glob("*/setup.cfg"))
# kind -> (name given, the hook it implements, what ``plugins list`` shows it registered)
KINDS = {
    "provider": ("weather", "register_providers",
                 {"providers": [{"name": "weather", "default_models": ["echo"]}], "tools": [], "strategies": []}),
    "tool": ("word-count", "register_tools", {"providers": [], "tools": ["word_count"], "strategies": []}),
    "context": ("first-turn", "register_context_strategies",
                {"providers": [], "tools": [], "strategies": ["first_turn"]}),
}


def environment(tmp: Path, *extra_paths: Path) -> dict[str, str]:
    """This environment for a subprocess: this checkout's BestChat and first-party plugins (plus
    ``extra_paths``) importable, an instance directory of its own, and the embedded backend."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("BESTCHAT_TEST_DATABASE_URL", "BESTCHAT_TEST_REDIS_URL", "BESTCHAT_DATABASE_URL",
                          "BESTCHAT_REDIS_URL", "BESTCHAT_CONFIG", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *PLUGIN_DIRS, *map(str, extra_paths)])
    env["BESTCHAT_INSTANCE_PATH"] = str(tmp / "instance")
    return env


def check(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module", params=sorted(KINDS))
def made(request, tmp_path_factory):
    """(kind, the package directory, the directory it is installed into)."""
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"scaffold-{kind}")
    env = environment(tmp)
    check([str(BIN / "bestchat"), "plugin", "new", KINDS[kind][0], "--kind", kind], tmp, env)
    package = tmp / f"bestchat-{KINDS[kind][0]}"
    site = tmp / "site"
    check([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
           "--no-deps", "--no-build-isolation", "--target", str(site), str(package)], tmp, env)
    return kind, package, site


def test_the_installed_plugin_is_loaded_with_what_it_registers(made):
    kind, package, site = made
    name, hook, registered = KINDS[kind]
    module = f"bestchat_{name.replace('-', '_')}"
    assert (site / f"{module}.py").read_text() == (package / f"{module}.py").read_text()
    listed = json.loads(check([str(BIN / "bestchat"), "plugins", "list", "--json"], package.parent,
                              environment(package.parent, site)))
    [record] = [plugin for plugin in listed["plugins"] if plugin["name"] == f"bestchat-{name}"]
    assert (record["status"], record["version"], record["hooks"], record["error"]) == ("loaded", "0.1.0", [hook], None)
    assert record["registered"] == registered


@pytest.mark.parametrize("installed", [True, False], ids=["installed", "not-installed"])
def test_its_own_tests_pass(made, installed):
    kind, package, site = made
    module = f"bestchat_{KINDS[kind][0].replace('-', '_')}"
    env = environment(package.parent, *([site] if installed else []))
    output = check([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"test_{module}.py"], package, env)
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, output
