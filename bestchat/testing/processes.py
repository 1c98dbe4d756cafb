"""Helpers for tests and benchmarks that start real processes: a free local port, polling
until a process is up (a safety bound, never a performance assertion), and stopping a
process started in its own session with everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Any, Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy (exceptions count as not yet) and return its value;
    ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def stop_group(process: subprocess.Popen, grace: float = 0.0) -> None:
    """Stop ``process`` (started with ``start_new_session=True``) and its whole process group:
    SIGTERM and up to ``grace`` seconds to exit, then SIGKILL (at once when ``grace`` is 0)."""
    if grace and process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)
