"""A real BestChat server for browser tests and the screenshot script.

``LiveServer`` migrates a fresh instance directory and starts ``gunicorn -k gevent -w 1
wsgi:app`` in embedded mode (SQLite, no Redis) on a free port. In front of it sits a small
TCP relay, :class:`Relay`, which the browser talks to: ``relay.cut()`` closes every open
connection at once, which the page sees exactly as a server dropping its WebSocket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Relay:
    """Forwards TCP connections from a free local port to ``target_port``; can cut them all."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self.lock:
                self.open.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self) -> None:
        """Drop every open connection (HTTP keep-alives and WebSockets) right now."""
        with self.lock:
            socks = list(self.open)
        self.cuts += 1
        self._close(*socks)

    def close(self) -> None:
        self.listener.close()
        self.cut()


class LiveServer:
    """gunicorn + gevent, one worker, embedded mode, fresh instance directory."""

    def __init__(self, **settings: str):
        self.tmp = tempfile.TemporaryDirectory(prefix="bestchat-browser-")
        self.port = free_port()
        self.env = {
            **os.environ,
            "BESTCHAT_INSTANCE_PATH": str(Path(self.tmp.name) / "instance"),
            "BESTCHAT_REDIS_URL": "",
            "BESTCHAT_DATABASE_URL": "",
            "BESTCHAT_RATELIMIT_LOGIN_PER_IP": "1000/60",
            "BESTCHAT_RATELIMIT_LOGIN_PER_ACCOUNT": "1000/60",
            "BESTCHAT_RATELIMIT_REGISTER_PER_IP": "1000/60",
            # the fake providers listen on loopback, which ordinary users may not reach otherwise
            "BESTCHAT_OUTBOUND_ALLOW": '["127.0.0.0/8", "::1"]',
            **{f"BESTCHAT_{name}": value for name, value in settings.items()},
        }
        self.process: subprocess.Popen | None = None
        self.relay: Relay | None = None
        self.log = Path(self.tmp.name) / "server.log"

    @property
    def url(self) -> str:
        """The address the browser uses (through the relay)."""
        return f"http://127.0.0.1:{self.relay.port}"

    def start(self) -> "LiveServer":
        subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=REPO,
                       env=self.env, check=True, capture_output=True)
        self.process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-k", "gevent", "-w", "1", "--bind", f"127.0.0.1:{self.port}",
             "--graceful-timeout", "2", "wsgi:app"],
            cwd=REPO, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        self.relay = Relay(self.port)
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.relay:
            self.relay.close()
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.tmp.cleanup()

    def __enter__(self) -> "LiveServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
