"""Tool functions for tests/test_sandbox.py: module-level, so the sandboxed runner can import
them by module and qualified name. Each one tries one thing a tool must not be able to do."""

from __future__ import annotations

import os
import socket
import sys
import time


def echo(text: str = "", number: int = 0) -> dict:
    return {"text": text, "number": number, "cwd": os.getcwd()}


def context() -> dict:
    from bestchat.tools.context import get_context

    return get_context()


def noisy() -> str:
    print("printed by the tool")
    sys.stdout.write("more\n")
    return "clean"


def boom() -> None:
    raise ValueError("the tool broke")


def not_json() -> object:
    return object()


def spin() -> None:
    while True:
        pass


def sleep_forever() -> None:
    while True:
        time.sleep(1)


def fork_bomb() -> int:
    children = 0
    while True:
        try:
            if os.fork() == 0:
                while True:
                    time.sleep(1)
            children += 1
        except OSError:
            time.sleep(0.05)  # at the limit: keep trying, like a real fork bomb


def allocate(gigabytes: int = 10) -> int:
    return len(bytearray(gigabytes * 1024 ** 3))


def write_file(path: str) -> str:
    with open(path, "w") as handle:
        handle.write("written by a tool")
    return path


def read_file(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def list_dir(path: str) -> list:
    return sorted(os.listdir(path))


def connect(port: int, host: str = "127.0.0.1") -> str:
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(b"ping")
        return sock.recv(16).decode()


def shout(megabytes: int = 100) -> None:
    block = "x" * (1024 * 1024)
    for _ in range(megabytes):
        sys.stdout.write(block)
    sys.stdout.flush()


def big_result(megabytes: int = 100) -> str:
    return "y" * (megabytes * 1024 * 1024)


def workdir_state(name: str = "marker") -> dict:
    before = sorted(os.listdir("."))
    with open(name, "w") as handle:
        handle.write("x")
    return {"cwd": os.getcwd(), "before": before}
