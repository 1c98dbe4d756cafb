"""The tool sandbox (bestchat/tools/sandbox.py): real runs through bubblewrap, each escape
contained with a clear status and this test process unaffected; the unsandboxed fallback;
``bestchat doctor`` and ``/readyz``.

The tools are in tests/sandbox_tools.py. Nothing here opens a connection outside 127.0.0.1.
"""

from __future__ import annotations

import glob
import os
import socket
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Config

from bestchat.tools import sandbox
from bestchat.tools.sandbox import run_tool
from tests import sandbox_tools

REPO = Path(__file__).resolve().parent.parent


def settings(**overrides) -> Config:
    config = Config(str(REPO))
    config.from_pyfile(str(REPO / "config" / "defaults.py"))
    config.update({"TOOL_TIMEOUT": 10, "TOOL_CPU_SECONDS": 5, "TOOL_PROCESSES": 16, **overrides})
    return config


def tool(function, *, risk: str = "high", network: bool = False, timeout: float | None = None):
    """A tool as run_tool reads it (name, function, risk, timeout, network)."""
    return SimpleNamespace(name=function.__name__, function=function, risk=risk, timeout=timeout,
                           network=network)


BWRAP = sandbox.isolation(settings())
needs_bwrap = pytest.mark.skipif(not BWRAP.available, reason=f"no bubblewrap sandbox here: {BWRAP.detail}")


def runner_processes() -> list[int]:
    """Host processes running this checkout's tool runner (bwrap, the runner, its forks)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if sandbox.RUNNER.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def rss_kb() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 answering "pong" to each connection, as (port, connections)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            with conn:
                conn.recv(16)
                conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()


# ---- ordinary runs ----

@needs_bwrap
def test_a_trivial_tool_succeeds_with_its_arguments_in_a_fresh_workdir():
    outcome = run_tool(tool(sandbox_tools.echo), {"text": "hi", "number": 7}, config=settings())
    assert outcome.status == "succeeded", outcome
    assert outcome.result == {"text": "hi", "number": 7, "cwd": sandbox.WORKDIR}
    assert outcome.error is None and outcome.duration_ms > 0


@needs_bwrap
def test_the_context_reaches_the_tool_and_prints_do_not_corrupt_the_result():
    context = {"tool": "context", "url_fetch": {"max_bytes": 10}}
    assert run_tool(tool(sandbox_tools.context), {}, config=settings(), context=context).result == context
    assert run_tool(tool(sandbox_tools.noisy), {}, config=settings()).result == "clean"


@needs_bwrap
def test_an_exception_or_a_value_that_is_not_json_fails_with_a_short_error():
    failed = run_tool(tool(sandbox_tools.boom), {}, config=settings())
    assert (failed.status, failed.error) == ("failed", "ValueError: the tool broke")
    strange = run_tool(tool(sandbox_tools.not_json), {}, config=settings())
    assert strange.status == "failed" and "not JSON" in strange.error


@needs_bwrap
def test_the_workdir_is_fresh_each_run_and_deleted_afterwards():
    before = set(glob.glob("/tmp/bestchat-tool-*"))
    first = run_tool(tool(sandbox_tools.workdir_state), {}, config=settings())
    second = run_tool(tool(sandbox_tools.workdir_state), {}, config=settings())
    assert first.result["before"] == second.result["before"] == []
    assert set(glob.glob("/tmp/bestchat-tool-*")) == before


# ---- escapes ----

@needs_bwrap
def test_an_infinite_loop_is_stopped_at_the_timeout():
    outcome = run_tool(tool(sandbox_tools.sleep_forever, timeout=1), {}, config=settings())
    assert outcome.status == "timed_out" and "longer than 1 s" in outcome.error
    assert outcome.duration_ms < 3000
    assert runner_processes() == []


@needs_bwrap
def test_the_cpu_limit_stops_a_busy_loop_before_the_wall_clock():
    outcome = run_tool(tool(sandbox_tools.spin), {}, config=settings(TOOL_CPU_SECONDS=1))
    assert (outcome.status, outcome.error) == ("timed_out", "CPU time limit exceeded (1 s)")
    assert outcome.duration_ms < 5000


@needs_bwrap
def test_a_fork_bomb_is_contained_and_leaves_no_process_behind():
    outcome = run_tool(tool(sandbox_tools.fork_bomb, timeout=2), {}, config=settings())
    assert outcome.status in ("failed", "timed_out"), outcome
    assert runner_processes() == []
    leftover = glob.glob(os.path.join(sandbox.processes.cgroup_parent() or "/nonexistent", "*", ""))
    assert leftover == []
    assert os.waitpid(os.spawnv(os.P_NOWAIT, "/bin/true", ["true"]), 0)[1] == 0  # we can still fork


@needs_bwrap
def test_a_10_gb_allocation_fails_out_of_memory():
    outcome = run_tool(tool(sandbox_tools.allocate), {"gigabytes": 10}, config=settings())
    assert (outcome.status, outcome.error) == ("failed", "out of memory")


@needs_bwrap
def test_writes_outside_the_workdir_fail_or_stay_inside_the_sandbox():
    for path in ("/usr/bestchat-probe", str(REPO / f"probe-{uuid.uuid4().hex}")):
        outcome = run_tool(tool(sandbox_tools.write_file), {"path": path}, config=settings())
        assert outcome.status == "failed" and "Read-only file system" in outcome.error, outcome
        assert not os.path.exists(path)
    host_tmp = f"/tmp/bestchat-probe-{uuid.uuid4().hex}"
    outcome = run_tool(tool(sandbox_tools.write_file), {"path": host_tmp}, config=settings())
    assert outcome.status == "succeeded"  # the sandbox's own /tmp, a tmpfs that ends with it
    assert not os.path.exists(host_tmp)


@needs_bwrap
def test_a_file_over_the_size_limit_fails():
    big = SimpleNamespace(name="big", risk="high", timeout=None, network=False,
                          function=sandbox_tools.write_file)
    outcome = run_tool(big, {"path": "/tmp/x"}, config=settings(TOOL_FILE_SIZE_MB=0))
    assert outcome.status == "failed" and "File too large" in outcome.error, outcome


@needs_bwrap
def test_the_instance_directory_database_and_settings_file_are_hidden(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # tmp_path is now bound into the sandbox
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "secret_key").write_text("instance-secret")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bestchat.db").write_text("database-secret")
    (tmp_path / "settings.py").write_text("SECRET_KEY = 'file-secret'")
    (tmp_path / "public.txt").write_text("visible")
    monkeypatch.setenv("BESTCHAT_CONFIG", str(tmp_path / "settings.py"))
    config = settings(INSTANCE_PATH=str(instance), DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'bestchat.db'}")

    def read(path):
        return run_tool(tool(sandbox_tools.read_file), {"path": str(path)}, config=config)

    assert read(tmp_path / "public.txt").result == "visible"  # the directory is bound
    assert read(instance / "secret_key").status == "failed"
    assert read(tmp_path / "data" / "bestchat.db").status == "failed"
    assert read(tmp_path / "settings.py").status == "failed"  # /dev/null bound over it, unreadable
    listing = run_tool(tool(sandbox_tools.list_dir), {"path": str(instance)}, config=config)
    assert listing.result == []


@needs_bwrap
def test_the_server_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("BESTCHAT_SECRET_PROBE", "s3cret-value")
    for path in ("/proc/1/environ", "/proc/self/environ"):
        outcome = run_tool(tool(sandbox_tools.read_file), {"path": path}, config=settings())
        assert outcome.status == "succeeded"
        assert "BESTCHAT_SECRET_PROBE" not in outcome.result and "s3cret" not in outcome.result
        assert "PATH=/usr/bin:/bin" in outcome.result


@needs_bwrap
def test_a_tool_without_network_reaches_no_local_service(listener):
    port, accepted = listener
    for target in (5432, 6379, port):
        outcome = run_tool(tool(sandbox_tools.connect), {"port": target}, config=settings())
        assert outcome.status == "failed" and "ConnectionRefusedError" in outcome.error, outcome
    assert accepted == []


@needs_bwrap
def test_a_network_tool_can_connect_to_a_loopback_listener(listener):
    port, accepted = listener
    outcome = run_tool(tool(sandbox_tools.connect, network=True), {"port": port}, config=settings())
    assert (outcome.status, outcome.result) == ("succeeded", "pong")
    assert len(accepted) == 1


@needs_bwrap
def test_100_mb_of_output_is_cut_off_without_growing_the_server():
    before = rss_kb()
    for function in (sandbox_tools.shout, sandbox_tools.big_result):
        outcome = run_tool(tool(function), {"megabytes": 100}, config=settings())
        assert outcome.status == "failed" and outcome.error.startswith("output too large"), outcome
    assert rss_kb() - before < 20 * 1024
    assert runner_processes() == []


# ---- without isolation ----

def test_without_a_sandbox_low_risk_tools_run_and_the_others_are_refused():
    config = settings(TOOL_SANDBOX="none")
    assert sandbox.isolation(config) == sandbox.Isolation(False, "none", sandbox.isolation(config).detail)
    assert sandbox.runnable_risks(config) == ("low",)
    low = run_tool(tool(sandbox_tools.echo, risk="low"), {"text": "ok"}, config=config)
    assert low.status == "succeeded" and low.result["text"] == "ok"
    assert low.result["cwd"].startswith(os.path.realpath("/tmp"))  # a fresh host directory
    for risk in ("medium", "high"):
        refused = run_tool(tool(sandbox_tools.echo, risk=risk), {}, config=config)
        assert refused.status == "refused" and "no sandbox" in refused.error


def test_without_a_sandbox_the_limits_still_apply():
    config = settings(TOOL_SANDBOX="none", TOOL_CPU_SECONDS=1)
    assert run_tool(tool(sandbox_tools.allocate, risk="low"), {}, config=config).error == "out of memory"
    spun = run_tool(tool(sandbox_tools.spin, risk="low"), {}, config=config)
    assert spun.status == "timed_out"
    assert runner_processes() == []


def test_a_required_bwrap_that_is_missing_refuses_every_tool():
    config = settings(TOOL_SANDBOX="bwrap", TOOL_BWRAP="/nonexistent/bwrap")
    assert not sandbox.isolation(config).available
    assert "not installed" in sandbox.isolation(config).detail
    outcome = run_tool(tool(sandbox_tools.echo, risk="low"), {}, config=config)
    assert outcome.status == "refused"


# ---- where an operator sees it ----

def test_doctor_prints_the_sandbox_status(runner):
    result = runner.invoke(args=["doctor"])
    assert result.exit_code == 0, result.output
    status = sandbox.isolation(settings())
    assert f"method: {status.method}" in result.output
    assert status.detail in result.output
    assert ("low, medium, high" if status.available else "low") in result.output


def test_readyz_reports_the_sandbox_without_failing_readiness(client):
    body = client.get("/readyz").get_json()
    status = sandbox.isolation(settings())
    assert body["status"] == "ok"
    assert body["tool_sandbox"] == {"available": status.available, "method": status.method,
                                    "detail": status.detail,
                                    "risks": list(sandbox.runnable_risks(settings()))}
