"""Real BestChat processes for the integration tests: gunicorn web processes (gevent) and, in
production mode, Celery workers, on free ports, against SQLite or the test PostgreSQL/Redis.

Every process started here is killed in ``Stack.stop()`` (called from a ``finally``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import httpx
import websocket
from sqlalchemy import create_engine, text

from bestchat.models import Base
from bestchat.testing.processes import free_port, stop_group, wait_for  # noqa: F401 - wait_for re-exported to the tests
from bestchat.settings import REPO_ROOT

BIN = REPO_ROOT / ".venv" / "bin"
PASSWORD = "correct horse battery"

# Settings every process gets: fast reaping and saving, a small frame limit to test.
TEST_ENV = {
    "BESTCHAT_ENV_NAME": "testing",
    "BESTCHAT_REAPER_INTERVAL": "1",
    "BESTCHAT_REAPER_STALE_AFTER": "3",
    "BESTCHAT_STREAM_SAVE_INTERVAL": "0.5",
    "BESTCHAT_WS_MAX_FRAME": "4096",
    # The fake providers listen on loopback: every user's connections may reach them.
    "BESTCHAT_OUTBOUND_ALLOW": '["127.0.0.0/8", "::1"]',
    "BESTCHAT_RATELIMIT_REGISTER_PER_IP": "1000/60",
    "BESTCHAT_RATELIMIT_LOGIN_PER_IP": "1000/60",
    "BESTCHAT_RATELIMIT_LOGIN_PER_ACCOUNT": "1000/60",
    "BESTCHAT_RATELIMIT_LOGIN_PER_DEVICE": "1000/60",
}


class Stack:
    """``webs`` gunicorn processes (one gevent worker each) and ``workers`` Celery workers."""

    def __init__(self, tmp: Path, *, database_url: str | None, redis_url: str | None,
                 webs: int = 1, workers: int = 0):
        self.tmp = tmp
        self.env = {**os.environ, **TEST_ENV, "BESTCHAT_INSTANCE_PATH": str(tmp / "instance")}
        self.env.pop("BESTCHAT_CONFIG", None)
        if database_url:
            self.env["BESTCHAT_DATABASE_URL"] = database_url
        else:
            database_url = f"sqlite:///{tmp / 'bestchat.db'}"
            self.env["BESTCHAT_DATABASE_URL"] = database_url
        if redis_url:
            self.env["BESTCHAT_REDIS_URL"] = redis_url
        else:
            self.env.pop("BESTCHAT_REDIS_URL", None)
        self.database_url = database_url
        self.redis_url = redis_url
        self.web_count, self.worker_count = webs, workers
        self.webs: list[tuple[subprocess.Popen, int]] = []
        self.workers: list[subprocess.Popen] = []

    # ---- processes --------------------------------------------------------------------------

    def start(self) -> "Stack":
        self._reset_database()
        for _ in range(self.web_count):
            self.start_web()
        for _ in range(self.worker_count):
            self.start_worker()
        return self

    def _reset_database(self) -> None:
        url = self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url)
        if url.startswith("sqlite"):
            Base.metadata.create_all(engine)
        else:
            with engine.begin() as conn:
                tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
                conn.execute(text(f"TRUNCATE {tables} CASCADE"))
        engine.dispose()
        if self.redis_url:
            import redis

            redis.Redis.from_url(self.redis_url).flushdb()

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")
        return subprocess.Popen(argv, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start_web(self, port: int | None = None) -> int:
        port = port or free_port()
        process = self._spawn(f"web-{port}", [str(BIN / "gunicorn"), "-k", "gevent", "-w", "1",
                                              "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2", "wsgi:app"])
        self.webs.append((process, port))
        wait_for(lambda: process.poll() is None and httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200,
                 what=f"web process on {port} ({self._tail(f'web-{port}')})")
        return port

    def start_worker(self) -> subprocess.Popen:
        name = f"worker-{len(self.workers)}"
        process = self._spawn(name, [str(BIN / "celery"), "-A", "celery_worker", "worker", "-P", "gevent",
                                     "-c", "50", "--loglevel", "INFO", "-n", f"{name}@%h", "--without-mingle",
                                     "--without-gossip", "--without-heartbeat"])
        self.workers.append(process)
        wait_for(lambda: process.poll() is None and b"ready." in (self.tmp / f"{name}.log").read_bytes(),
                 what=f"celery worker ({self._tail(name)})")
        return process

    def kill_web(self, index: int = 0) -> int:
        """SIGKILL a web process (and its gunicorn worker); returns its port."""
        process, port = self.webs.pop(index)
        stop_group(process)
        return port

    def kill_worker(self, index: int = 0) -> None:
        stop_group(self.workers.pop(index))

    def stop(self) -> None:
        for process, _ in self.webs:
            stop_group(process)
        for process in self.workers:
            stop_group(process)
        self.webs, self.workers = [], []

    def _tail(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""

    # ---- clients ----------------------------------------------------------------------------

    def url(self, web: int = 0) -> str:
        return f"http://127.0.0.1:{self.webs[web][1]}"

    def new_user(self, email: str) -> "User":
        base = self.url()
        with httpx.Client(base_url=base) as http:
            assert http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
            login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            csrf = login.json()["csrf_token"]
            token = http.post("/api/v1/tokens", json={"name": "tests"}, headers={"X-CSRF-Token": csrf}).json()["token"]
        return User(self, token)


class User:
    """An account with an API token, talking REST (httpx) and WebSocket (websocket-client)."""

    def __init__(self, stack: Stack, token: str):
        self.stack = stack
        self.token = token

    def http(self, web: int = 0) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url(web), headers={"Authorization": f"Bearer {self.token}"},
                            timeout=30)

    def api(self, method: str, path: str, web: int = 0, **kwargs) -> httpx.Response:
        with self.http(web) as http:
            return http.request(method, f"/api/v1{path}", **kwargs)

    def conversation(self, tokens_per_second: float = 0) -> str:
        response = self.api("POST", "/conversations", json={"settings": {"tokens_per_second": tokens_per_second}})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def socket(self, web: int = 0) -> "Socket":
        return Socket(self.stack.url(web).replace("http://", "ws://") + f"/ws?token={self.token}")


class Socket:
    def __init__(self, url: str):
        self.ws = websocket.create_connection(url, timeout=30)

    def send(self, **frame: Any) -> None:
        self.ws.send(json.dumps(frame))

    def recv(self) -> dict[str, Any]:
        return json.loads(self.ws.recv())

    def until(self, predicate: Callable[[dict[str, Any]], bool], ignore_typing: bool = True) -> list[dict[str, Any]]:
        """Frames received up to and including the first matching ``predicate``."""
        frames = []
        while True:
            frame = self.recv()
            if ignore_typing and frame["type"] == "typing" and not predicate(frame):
                continue
            frames.append(frame)
            if predicate(frame):
                return frames

    def sync(self) -> None:
        """Every frame sent before has been handled once the pong arrives."""
        self.send(type="ping")
        self.until(lambda f: f["type"] == "pong")

    def subscribe(self, conversation_id: str, **extra: Any) -> None:
        self.send(type="subscribe", conversation_id=conversation_id, **extra)
        self.sync()

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass



def terminal(frame: dict[str, Any], message_id: str | None = None) -> bool:
    return frame["type"] in ("message.completed", "message.failed") and (
        message_id is None or frame["message_id"] == message_id)
