"""The process-count limit of a tool run: a pids cgroup when this process may create one, else
RLIMIT_NPROC.

A pids cgroup (cgroup v1 ``/sys/fs/cgroup/pids``, usually writable by root only) limits the
run's own processes and threads, whoever owns them, and lets the server kill every one of them
afterwards. RLIMIT_NPROC is the fallback: the kernel counts every process and thread of the
server's user against it and does not enforce it at all for root, so the limit set is the
user's current count plus the run's allowance.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import time
from functools import lru_cache

PIDS_ROOT = "/sys/fs/cgroup/pids"
PARENT = "bestchat-sandbox"


@lru_cache(maxsize=1)
def cgroup_parent() -> str | None:
    """The directory under which each run gets its pids cgroup, or None when none is writable."""
    parent = os.path.join(PIDS_ROOT, PARENT)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError:
        return None
    if not (os.access(parent, os.W_OK) and os.path.exists(os.path.join(parent, "cgroup.procs"))):
        return None
    return parent


def method() -> str:
    """How the process count is limited here: ``"pids cgroup"`` or ``"RLIMIT_NPROC"``."""
    if cgroup_parent():
        return "pids cgroup"
    return "RLIMIT_NPROC (not enforced: the server runs as root)" if os.getuid() == 0 else "RLIMIT_NPROC"


class ProcessLimit:
    """One run's process limit: :meth:`in_child` runs in the forked child before exec (it may
    only make system calls), :meth:`release` kills what is left and removes the cgroup."""

    def __init__(self, processes: int):
        self.processes = processes
        self.cgroup: str | None = None
        self.nproc: int | None = None
        parent = cgroup_parent()
        if parent:
            path = os.path.join(parent, secrets.token_hex(8))
            try:
                os.mkdir(path)
                with open(os.path.join(path, "pids.max"), "w") as handle:
                    handle.write(str(processes))
                self.cgroup = path
            except OSError:
                _rmdir(path)
        if self.cgroup is None:
            self.nproc = _user_tasks() + processes
        self._procs = os.path.join(self.cgroup, "cgroup.procs").encode() if self.cgroup else None

    def in_child(self) -> None:
        import resource

        if self._procs is not None:
            fd = os.open(self._procs, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        elif self.nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (self.nproc, self.nproc))

    def release(self) -> None:
        """Kill every process still in the cgroup and remove it (retried while it empties)."""
        if self.cgroup is None:
            return
        deadline = time.monotonic() + 5
        while True:
            for pid in _members(self.cgroup):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if _rmdir(self.cgroup) or time.monotonic() > deadline:
                return
            time.sleep(0.01)


def _members(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as handle:
            return [int(line) for line in handle if line.strip()]
    except OSError:
        return []


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as error:
        if error.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        return True
    return True


def _user_tasks() -> int:
    """Processes and threads of this user now (what RLIMIT_NPROC counts)."""
    uid = os.getuid()
    count = 0
    try:
        entries = os.scandir("/proc")
    except OSError:
        return 0
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                count += int(fields[17])  # num_threads (field 20 of stat)
            except (OSError, IndexError, ValueError):
                continue
    return count
