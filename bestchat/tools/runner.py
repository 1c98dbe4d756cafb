"""The program that runs one tool call inside the sandbox: ``python -I -S runner.py``.

It reads one JSON request on stdin, ``{"path", "module", "qualname", "arguments", "context"}``,
and writes one JSON result on its original stdout: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "...", "kind": "exception" | "memory" | "cpu" | "result"}``. Before
the tool runs, file descriptor 1 is pointed at stderr, so whatever the tool prints goes there
and cannot corrupt the result. Started by ``bestchat/tools/sandbox.py``; it imports nothing of
the server but ``bestchat.tools.context``.
"""

import importlib
import json
import os
import signal
import sys

ERROR_MAX_CHARS = 300


def main() -> None:
    result_fd = os.dup(1)
    os.dup2(2, 1)  # the tool's prints (and any library's) go to stderr
    os.set_inheritable(result_fd, False)
    request = json.loads(sys.stdin.buffer.read())
    sys.path[:0] = [entry for entry in request["path"] if entry not in sys.path]

    def cpu_exceeded(_signum, _frame):
        _write(result_fd, _encode({"ok": False, "kind": "cpu", "error": "CPU time limit exceeded"}))
        os._exit(3)

    signal.signal(signal.SIGXCPU, cpu_exceeded)
    _write(result_fd, _call(request))
    sys.stderr.flush()
    os._exit(0)


def _call(request: dict) -> bytes:
    """The encoded result of the call (the value is encoded once: it may be large)."""
    try:
        from bestchat.tools.context import set_context

        set_context(request.get("context") or {})
        function = importlib.import_module(request["module"])
        for part in request["qualname"].split("."):
            function = getattr(function, part)
        value = function(**request["arguments"])
    except MemoryError:
        return _encode({"ok": False, "kind": "memory", "error": "out of memory"})
    except BaseException as error:  # noqa: BLE001 - every failure of the tool is its result
        return _encode({"ok": False, "kind": "exception", "error": _describe(error)})
    try:
        return _encode({"ok": True, "result": value})
    except (TypeError, ValueError, RecursionError):
        return _encode({"ok": False, "kind": "result",
                        "error": f"the tool returned a value that is not JSON ({type(value).__name__})"})
    except MemoryError:
        return _encode({"ok": False, "kind": "memory", "error": "out of memory"})


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text if len(text) <= ERROR_MAX_CHARS else text[:ERROR_MAX_CHARS - 3] + "..."


def _encode(payload: dict) -> bytes:
    return json.dumps(payload, allow_nan=False).encode()


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


if __name__ == "__main__":
    main()
