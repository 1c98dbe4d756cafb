#!/usr/bin/env python
"""Sandboxed tool start-to-result: ``run_tool`` of a trivial tool, p50/p95 over N runs, next to
what it is made of (one process, nothing else on the machine needed).

Rows, each timed from the call to the result in this process:

* ``direct call``        - the tool function called in this process (what the sandbox adds to)
* ``python start``       - ``python -I -S -c pass``: the interpreter alone, no sandbox
* ``bwrap + python``     - the same interpreter started by bubblewrap with the sandbox's
                            namespaces (``--unshare-all``), no binds beyond /usr and the prefix
* ``run_tool, none``     - ``run_tool`` with TOOL_SANDBOX="none": a plain child with the limits
* ``run_tool, bwrap``    - ``run_tool`` with bubblewrap: the path every medium/high tool takes
* ``pipeline, no tool``  - send -> ``complete`` through the embedded server (SQLite, in-process
                            job, the demo model at full speed), an answer without a tool
* ``pipeline, one tool round`` - the same with one round: the model calls the trivial tool
                            (auto-approved), it runs in the sandbox, the model answers again
                            (overhead = minus ``pipeline, no tool``)

Overhead = the row's percentile minus the direct call's. Results go to
``benchmarks/results/tool_bench-<stamp>.json`` (raw: every sample) and ``.md`` (the table).

    .venv/bin/python benchmarks/tool_bench.py [--runs 50] [--out STAMP]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from git_state import git_state

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))
# The sandboxed child imports this module for ``trivial``: the server modules are imported in
# the functions below, so the child's import stays as light as a real tool module's.


def trivial(text: str = "") -> dict:
    """The benchmark's tool: returns its argument."""
    return {"echo": text}


def settings(**overrides: Any):
    from flask import Config

    config = Config(str(REPO))
    config.from_pyfile(str(REPO / "config" / "defaults.py"))
    config.update(overrides)
    return config


def sample(action: Callable[[], Any], runs: int) -> list[float]:
    action()  # warm-up: probes and caches, page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", default=None, help="result file stem after tool_bench- (default: a time stamp)")
    args = parser.parse_args()
    from bestchat.tools import sandbox
    from bestchat.tools.base import Tool

    stamp = args.out or time.strftime("%Y%m%d-%H%M%S")
    # The tool must be importable by module name in the child: this file as ``tool_bench``.
    from tool_bench import trivial as importable

    tool = Tool.from_function(importable, risk="high")
    python = os.path.realpath(sys.executable)
    bwrap_cfg, plain_cfg = settings(), settings(TOOL_SANDBOX="none")
    status = sandbox.isolation(bwrap_cfg)
    low = Tool.from_function(importable, risk="low")

    def checked(config, which):
        outcome = sandbox.run_tool(which, {"text": "hi"}, config=config)
        assert outcome.status == "succeeded" and outcome.result == {"echo": "hi"}, outcome

    rows: dict[str, list[float]] = {
        "direct call": sample(lambda: trivial(text="hi"), args.runs),
        "python start": sample(lambda: subprocess.run([python, "-I", "-S", "-c", "pass"], check=True), args.runs),
    }
    if status.available:
        bare = [sandbox.sandbox_binary(bwrap_cfg), *sandbox.NAMESPACES, *sandbox._system_binds(),
                "--ro-bind", sys.base_prefix, sys.base_prefix, "--proc", "/proc", "--dev", "/dev",
                python, "-I", "-S", "-c", "pass"]
        rows["bwrap + python"] = sample(lambda: subprocess.run(bare, check=True), args.runs)
    rows["run_tool, none"] = sample(lambda: checked(plain_cfg, low), args.runs)
    if status.available:
        rows["run_tool, bwrap"] = sample(lambda: checked(bwrap_cfg, tool), args.runs)
    rows.update(pipeline_rows(low, args.runs))
    direct = rows["direct call"]
    table = []
    for name, values in rows.items():
        base = rows["pipeline, no tool"] if name == "pipeline, one tool round" else direct
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        table.append({"row": name, "runs": len(values), "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                      "overhead_p50_ms": round(p50 - percentile(base, 0.5), 2),
                      "overhead_p95_ms": round(p95 - percentile(base, 0.95), 2)})
    results = {
        "stamp": stamp, "command": " ".join([".venv/bin/python", "benchmarks/tool_bench.py", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} cores, {os.uname().release}, python {sys.version.split()[0]}",
        "sandbox": {"available": status.available, "method": status.method, "detail": status.detail},
        "git": git_state(), "table": table, "samples_ms": {name: [round(v, 3) for v in values]
                                                           for name, values in rows.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    text = markdown(results)
    (RESULTS / f"tool_bench-{stamp}.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"tool_bench-{stamp}.md").write_text(text)
    print(text)


def pipeline_rows(tool: Any, runs: int) -> dict[str, list[float]]:
    """Send -> complete through an embedded server, without and with one tool round."""
    import tempfile

    import gevent

    from bestchat import create_app, plugins
    from bestchat.extensions import db
    from bestchat.hookspecs import hookimpl
    from bestchat.models import Message
    from bestchat.testing.client import Client

    folder = Path(tempfile.mkdtemp(prefix="tool-bench-"))
    app = create_app({"INSTANCE_PATH": folder / "instance", "DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
                      "REDIS_URL": None, "TESTING": True, "RATELIMIT_SEND_PER_USER": "1000000/60"})
    with app.app_context():
        db.create_all()

    class BenchTools:
        @hookimpl
        def register_tools(self, register):
            register(tool)

    plugins.register_plugin(BenchTools(), "tool-bench")
    client = Client(app)
    client.signup("bench@example.com", "correct horse battery")
    conversation = client.post("/api/v1/conversations", {"model": "demo/demo",
                                                         "settings": {"tokens_per_second": 0}}).get_json()["id"]

    def answer(content: str) -> None:
        sent = client.post(f"/api/v1/conversations/{conversation}/messages", {"content": content})
        key = sent.get_json()["assistant_message"]["id"]
        with app.app_context():
            import uuid  # noqa: PLC0415

            while True:
                status = db.session.scalar(db.select(Message.status).where(Message.id == uuid.UUID(key)))
                db.session.commit()
                if status in ("complete", "failed", "cancelled"):
                    assert status == "complete", status
                    return
                gevent.sleep(0.0005)

    try:
        return {"pipeline, no tool": sample(lambda: answer("hi"), runs),
                "pipeline, one tool round": sample(lambda: answer(f'[[{tool.name} {{"text": "hi"}}]]'), runs)}
    finally:
        plugins.unregister_plugin("tool-bench")


def markdown(results: dict[str, Any]) -> str:
    git = results["git"]
    lines = [f"# Tool sandbox benchmark tool_bench-{results['stamp']}", "",
             f"Machine: {results['machine']}. Command: `{results['command']}`. "
             f"Commit {git.get('commit', '?')[:10]} ({len(git.get('changed_files', []))} files changed in the work tree). "
             f"Sandbox: {results['sandbox']['method']} ({results['sandbox']['detail']}).", "",
             "Start-to-result of a trivial tool, ms (overhead = minus the direct call)", "",
             "| row | runs | p50 | p95 | overhead p50 | overhead p95 |", "|---|---|---|---|---|---|"]
    for row in results["table"]:
        lines.append(f"| {row['row']} | {row['runs']} | {row['p50_ms']} | {row['p95_ms']} | "
                     f"{row['overhead_p50_ms']} | {row['overhead_p95_ms']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
