"""Run one tool call in a separate, isolated process, never in the calling one.

With bubblewrap (``TOOL_SANDBOX`` ``"auto"`` or ``"bwrap"``), the call runs in new user, pid,
network, IPC, UTS and cgroup namespaces: no network unless the tool declares it, a read-only
view of only what Python needs, an empty ``/tmp``, a fresh working directory deleted
afterwards, the instance directory, the SQLite database's directory, the upload folder and the
settings file hidden, and a minimal environment. Every run also gets CPU-seconds, memory,
file-size, open-file and process-count limits, a wall-clock timeout that kills the whole
process tree, and a cap on its output. Without bubblewrap, only low-risk tools run (in a plain
child process with the same limits); the others are refused. The threat model is in
docs/security.md "Tool sandbox".

The child is ``bestchat/tools/runner.py``; the protocol is described there. Works in plain and
gevent-patched processes (``subprocess`` and ``selectors`` are then gevent's).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from bestchat.tools import processes

log = logging.getLogger(__name__)

RUNNER = str(Path(__file__).with_name("runner.py").resolve())
WORKDIR = "/workdir"  # the working directory's path inside the sandbox
NAMESPACES = ("--unshare-all", "--die-with-parent", "--new-session")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ssl", "/etc/ca-certificates", "/etc/resolv.conf", "/etc/hosts",
             "/etc/nsswitch.conf", "/etc/localtime", "/etc/ld.so.cache", "/etc/mime.types")
STDERR_KEPT = 4096  # bytes of the tool's stderr kept for the server log
ERROR_MAX_CHARS = 300


@dataclass(frozen=True)
class Limits:
    """Limits of one run; :meth:`from_config` reads the TOOL_* settings."""

    timeout: float
    cpu_seconds: int
    memory_mb: int
    file_size_mb: int
    open_files: int
    processes: int
    output_bytes: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any], tool: Any = None) -> Limits:
        """The configured limits; a tool's own ``timeout`` may shorten the wall-clock one."""
        timeout = float(config["TOOL_TIMEOUT"])
        own = getattr(tool, "timeout", None)
        if own:
            timeout = min(timeout, float(own))
        return cls(timeout=timeout, cpu_seconds=int(config["TOOL_CPU_SECONDS"]),
                   memory_mb=int(config["TOOL_MEMORY_MB"]), file_size_mb=int(config["TOOL_FILE_SIZE_MB"]),
                   open_files=int(config["TOOL_OPEN_FILES"]), processes=int(config["TOOL_PROCESSES"]),
                   output_bytes=int(config["TOOL_OUTPUT_MAX_BYTES"]))


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``succeeded``, ``failed``, ``timed_out`` or ``refused``."""

    status: str
    result: Any = None
    error: str | None = None
    duration_ms: int = 0
    raised: bool = False  # the tool itself raised (counted as a failure of its plugin)


@dataclass(frozen=True)
class Isolation:
    """Whether tools run isolated here (``method`` ``"bwrap"``) or not (``"none"``), and why."""

    available: bool
    method: str
    detail: str


_isolation_cache: dict[tuple[str, str], Isolation] = {}
_isolation_lock = threading.Lock()


def isolation(config: Mapping[str, Any]) -> Isolation:
    """The sandbox this server can use, probed once per (TOOL_SANDBOX, TOOL_BWRAP)."""
    key = (str(config.get("TOOL_SANDBOX", "auto")), str(config.get("TOOL_BWRAP", "bwrap")))
    with _isolation_lock:
        if key not in _isolation_cache:
            _isolation_cache[key] = _probe(*key)
        return _isolation_cache[key]


def runnable_risks(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The risk levels whose tools this server runs: all three with isolation, else low only
    (none when TOOL_SANDBOX is "bwrap" and bubblewrap does not work)."""
    if isolation(config).available:
        return ("low", "medium", "high")
    return () if config.get("TOOL_SANDBOX") == "bwrap" else ("low",)


def run_tool(tool: Any, arguments: dict, *, config: Mapping[str, Any],
             context: dict | None = None) -> Outcome:
    """Run ``tool.function(**arguments)`` in a child process; tool failures become the Outcome."""
    started = time.monotonic()
    try:
        outcome = _run(tool, arguments, config, context)
    except Exception:  # noqa: BLE001 - a failure to run is the call's outcome, never the caller's error
        log.exception("tool %s: the sandbox failed", getattr(tool, "name", "?"))
        outcome = Outcome("failed", error="the sandbox failed to run the tool")
    if outcome.raised:
        from bestchat.plugins import count_failure  # noqa: PLC0415 - the child imports this module lean

        count_failure(getattr(tool, "plugin", None))
    return Outcome(outcome.status, outcome.result, outcome.error,
                   int((time.monotonic() - started) * 1000), outcome.raised)


def _run(tool: Any, arguments: dict, config: Mapping[str, Any], context: dict | None) -> Outcome:
    sandbox = isolation(config)
    if getattr(tool, "risk", "low") not in runnable_risks(config):
        why = f"no sandbox is available ({sandbox.detail})"
        if config.get("TOOL_SANDBOX") != "bwrap":
            why += f"; {tool.risk}-risk tools run only in a sandbox"
        return Outcome("refused", error=f"refused: {why}")
    limits = Limits.from_config(config, tool)
    function = tool.function
    roots = _import_roots(function.__module__)
    request = {"path": roots + [entry for entry in _path_entries() if entry not in roots],
               "module": function.__module__, "qualname": function.__qualname__,
               "arguments": arguments, "context": context or {}}
    try:
        body = json.dumps(request).encode()
    except (TypeError, ValueError) as error:
        return Outcome("failed", error=f"arguments are not JSON: {error}"[:ERROR_MAX_CHARS])
    workdir = tempfile.mkdtemp(prefix="bestchat-tool-")
    try:
        if sandbox.available:
            argv = _bwrap_argv(config, sandbox_binary(config), workdir, request["path"],
                               network=bool(getattr(tool, "network", False)))
            cwd = None
        else:
            argv = [sys.executable, "-I", "-S", RUNNER]
            cwd = workdir
        return _execute(argv, body, limits, cwd=cwd, env=_environment(sandbox.available, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def sandbox_binary(config: Mapping[str, Any]) -> str:
    name = str(config.get("TOOL_BWRAP") or "bwrap")
    return shutil.which(name) or name


# ---- probing ----

def _probe(mode: str, binary: str) -> Isolation:
    if mode == "none":
        return Isolation(False, "none", "TOOL_SANDBOX is \"none\": tools run as plain child processes")
    if mode not in ("auto", "bwrap"):
        return Isolation(False, "none", f"TOOL_SANDBOX {mode!r} is not one of auto, bwrap, none")
    path = shutil.which(binary)
    if path is None:
        return Isolation(False, "none", f"bubblewrap ({binary}) is not installed")
    true = shutil.which("true") or "/usr/bin/true"
    argv = [path, *NAMESPACES, *_system_binds(), "--proc", "/proc", "--dev", "/dev", true]
    try:
        probe = subprocess.run(argv, capture_output=True, timeout=10, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as error:
        return Isolation(False, "none", f"bubblewrap ({path}) does not start: {error}")
    if probe.returncode != 0:
        reason = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
        return Isolation(False, "none", f"bubblewrap ({path}) cannot create namespaces: {reason[0]}")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
    return Isolation(True, "bwrap", f"{version or 'bubblewrap'} ({path}): user, pid, network, IPC, UTS "
                                    f"and cgroup namespaces; process limit: {processes.method()}")


# ---- the bubblewrap command ----

def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    return args


def _bwrap_argv(config: Mapping[str, Any], binary: str, workdir: str, path: list[str], *,
                network: bool) -> list[str]:
    args = [binary, *NAMESPACES] + (["--share-net"] if network else []) + _system_binds()
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # first: binds below may lie in /tmp
    for name in ETC_FILES:
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    bound: list[str] = ["/usr"]
    for entry in _bind_roots(path):
        if not _inside(entry, bound):
            args += ["--ro-bind", entry, entry]
            bound.append(entry)
    args += ["--bind", workdir, WORKDIR, "--chdir", WORKDIR]
    for hidden in _hidden_paths(config):
        if _inside(hidden, bound) and os.path.exists(hidden):
            args += ["--tmpfs", hidden] if os.path.isdir(hidden) else ["--ro-bind", "/dev/null", hidden]
    return args + ["--", _interpreter(), "-I", "-S", RUNNER]


def _interpreter() -> str:
    return os.path.realpath(sys.executable)


def _bind_roots(path: list[str]) -> list[str]:
    """Real directories the child needs: the interpreter's prefixes, the import path, the runner."""
    wanted = [sys.base_prefix, sys.prefix, os.path.dirname(_interpreter()), os.path.dirname(RUNNER), *path]
    roots: list[str] = []
    for entry in wanted:
        real = os.path.realpath(entry)
        if real != "/" and os.path.isdir(real) and real not in roots:
            roots.append(real)
    return sorted(roots, key=len)


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _hidden_paths(config: Mapping[str, Any]) -> list[str]:
    """What a tool must not read although it may lie inside a bound directory."""
    candidates = [config.get("INSTANCE_PATH"), config.get("UPLOAD_FOLDER"), os.environ.get("BESTCHAT_CONFIG")]
    if "flask" in sys.modules:
        from flask import current_app, has_app_context

        if has_app_context():
            candidates.append(current_app.instance_path)
    from bestchat.settings import default_instance_path

    candidates.append(default_instance_path())
    url = str(config.get("DATABASE_URL") or config.get("SQLALCHEMY_DATABASE_URI") or "")
    if url.startswith("sqlite") and ":///" in url:
        database = url.split(":///", 1)[1].split("?", 1)[0]
        if database and database != ":memory:":
            candidates.append(os.path.dirname(os.path.abspath(database)))
    hidden: list[str] = []
    for candidate in candidates:
        if candidate:
            real = os.path.realpath(str(candidate))
            if real not in hidden:
                hidden.append(real)
    return hidden


def _path_entries() -> list[str]:
    entries = []
    for entry in sys.path:
        real = os.path.realpath(entry or os.getcwd())
        if os.path.isdir(real) and real not in entries:
            entries.append(real)
    return entries


def _import_roots(module: str) -> list[str]:
    """The directory holding the tool's top-level package and bestchat's (editable installs
    import through a finder that the child, started without ``site``, does not have)."""
    roots = []
    for name in (module.split(".")[0], "bestchat"):
        loaded = sys.modules.get(name)
        location = getattr(loaded, "__file__", None)
        if location:
            top = os.path.dirname(os.path.realpath(location))
            root = os.path.dirname(top) if os.path.basename(location).startswith("__init__.") else top
            if root not in roots:
                roots.append(root)
    return roots


def _environment(isolated: bool, workdir: str) -> dict[str, str]:
    home = WORKDIR if isolated else workdir
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "TMPDIR": "/tmp" if isolated else workdir}


# ---- running the child ----

def _execute(argv: list[str], body: bytes, limits: Limits, *, cwd: str | None,
             env: dict[str, str]) -> Outcome:
    group = processes.ProcessLimit(limits.processes)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
                                preexec_fn=_limiter(limits, group))
    except OSError as error:
        group.release()
        return Outcome("failed", error=f"the sandbox did not start: {error.strerror or error}")
    try:
        return _supervise(proc, body, limits)
    finally:
        _kill_group(proc)
        group.release()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def _limiter(limits: Limits, group: processes.ProcessLimit):
    import resource

    memory = limits.memory_mb * 1024 * 1024
    file_size = limits.file_size_mb * 1024 * 1024
    settings = [(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)),
                (resource.RLIMIT_AS, (memory, memory)),
                (resource.RLIMIT_FSIZE, (file_size, file_size)),
                (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
                (resource.RLIMIT_CORE, (0, 0))]

    def in_child() -> None:
        group.in_child()
        for which, value in settings:
            resource.setrlimit(which, value)

    return in_child


def _supervise(proc: subprocess.Popen, body: bytes, limits: Limits) -> Outcome:
    deadline = time.monotonic() + limits.timeout
    try:
        proc.stdin.write(body)
        proc.stdin.close()
    except OSError:
        pass  # the child died before reading: its exit status says why
    out_fd = proc.stdout.fileno()
    result, stderr = bytearray(), bytearray()
    total = 0
    with selectors.DefaultSelector() as selector:
        selector.register(out_fd, selectors.EVENT_READ)
        selector.register(proc.stderr.fileno(), selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_group(proc)
                return Outcome("timed_out", error=f"the tool ran longer than {limits.timeout:g} s and was stopped")
            for key, _ in selector.select(remaining):
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                total += len(chunk)
                if total > limits.output_bytes:
                    _kill_group(proc)
                    return Outcome("failed", error=f"output too large (more than {limits.output_bytes} bytes)")
                if key.fd == out_fd:
                    result += chunk
                elif len(stderr) < STDERR_KEPT:
                    stderr += chunk[:STDERR_KEPT - len(stderr)]
    try:
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return Outcome("timed_out", error=f"the tool ran longer than {limits.timeout:g} s and was stopped")
    if stderr:
        log.debug("tool stderr: %s", stderr.decode(errors="replace"))
    return _outcome(bytes(result), code, limits)


def _outcome(result: bytes, code: int, limits: Limits) -> Outcome:
    try:
        payload, _ = json.JSONDecoder().raw_decode(result.decode())
    except (UnicodeDecodeError, ValueError):
        payload = None
    if isinstance(payload, dict) and payload.get("ok") is True:
        return Outcome("succeeded", result=payload.get("result"))
    if isinstance(payload, dict) and payload.get("kind") == "cpu":
        return Outcome("timed_out", error=f"CPU time limit exceeded ({limits.cpu_seconds} s)")
    if isinstance(payload, dict):
        return Outcome("failed", error=str(payload.get("error") or "the tool failed")[:ERROR_MAX_CHARS],
                       raised=payload.get("kind") == "exception")
    signum = -code if code < 0 else code - 128 if code > 128 else 0
    if signum in (signal.SIGXCPU, signal.SIGKILL):
        # Without a result, SIGXCPU or SIGKILL is the CPU limit (the wall clock is handled above).
        return Outcome("timed_out", error=f"CPU time limit exceeded ({limits.cpu_seconds} s)")
    if signum:
        return Outcome("failed", error=f"the tool process was killed by {signal.Signals(signum).name}"
                       if signum in signal.valid_signals() else f"the tool process ended with status {code}")
    return Outcome("failed", error=f"the tool process ended without a result (status {code})")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("tool process %s did not exit after SIGKILL", proc.pid)
