"""The tutorial plugin (``docs/tutorial-plugin``), installed as its reader installs it: a real
wheel build into a directory of its own (never into this venv), then ``bestchat plugins list``
and the tutorial's own tests in processes that see it installed. Its tests must pass with the
plugin installed (its entry point registers it before the test's ``plugin_registered`` does)
as they pass without it (the rest of the suite runs them so). As after the tutorial's editable
install, the test module and the entry point get the same module: the one next to the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A directory holding bestchat-shout as ``pip install`` lays it out (module, dist-info and
    its entry point), built from a copy of the tutorial (the build writes next to its sources)."""
    source = shutil.copytree(TUTORIAL, tmp_path_factory.mktemp("source") / "bestchat-shout",
                             ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "--no-input", "--no-index", "--no-deps", "--no-build-isolation", "--target", str(target),
                            str(source)], capture_output=True, text=True, timeout=100)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (target / "bestchat_shout.py").is_file()
    return target


@pytest.fixture
def environment(site, tmp_path) -> dict[str, str]:
    """This run's environment with ``site`` first on the path; the embedded backend only (the
    databases this run was given belong to it) and an instance directory of its own."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("BESTCHAT_TEST_DATABASE_URL", "BESTCHAT_TEST_REDIS_URL",
                           "BESTCHAT_DATABASE_URL", "BESTCHAT_REDIS_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["BESTCHAT_INSTANCE_PATH"] = str(tmp_path / "instance")
    return env


def test_the_installed_plugin_is_listed_with_its_provider_and_tool(environment, tmp_path):
    command = [sys.executable, "-c", "import sys; from bestchat.cli import main; sys.exit(main())",
               "plugins", "list", "--json"]
    listed = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    shout = {plugin["name"]: plugin for plugin in json.loads(listed.stdout)["plugins"]}["bestchat-shout"]
    assert (shout["status"], shout["version"], shout["error"]) == ("loaded", "0.1.0", None)
    assert shout["registered"]["providers"] == [{"name": "shout", "default_models": ["loud"]}]
    assert shout["registered"]["tools"] == ["shout"]


def test_the_tutorials_tests_pass_with_the_plugin_installed(environment):
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(TUTORIAL / "test_bestchat_shout.py")]
    run = subprocess.run(command, cwd=TUTORIAL.parent.parent, env=environment, capture_output=True, text=True,
                         timeout=100)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout
