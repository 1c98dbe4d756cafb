"""A library imported while serving is frozen out of the collector's full passes after the job
that imported it (bestchat.gc_freeze.freeze_new_imports), only in a process that froze at start.
Run in a child interpreter: freezing is for the whole process."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json, sys
from bestchat.gc_freeze import freeze_new_imports, freeze_startup_objects
steps = {"before_start": freeze_new_imports()}
freeze_startup_objects()
frozen = gc.get_freeze_count()
steps["nothing_new"] = freeze_new_imports()
assert "xml.dom.minidom" not in sys.modules
import xml.dom.minidom
steps["after_import"] = freeze_new_imports()
steps["grew"] = gc.get_freeze_count() > frozen
steps["again"] = freeze_new_imports()
print(json.dumps(steps))
"""


def test_new_imports_are_frozen_once_and_only_in_a_serving_process():
    output = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    assert json.loads(output) == {"before_start": False, "nothing_new": False, "after_import": True,
                                  "grew": True, "again": False}


def test_the_generation_task_freezes_after_each_job(app, monkeypatch):
    from bestchat.tasks import generation

    calls = []
    monkeypatch.setattr(generation, "freeze_new_imports", lambda: calls.append(True))
    with app.app_context():
        generation.generate.run("00000000-0000-0000-0000-000000000000")  # no such message: a no-op job
    assert calls == [True]
