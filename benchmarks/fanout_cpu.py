#!/usr/bin/env python
"""The web process's CPU per delivered token: the stream bus's reader and fan-out alone.

No worker and no provider: this script publishes the answers' chunks itself, through the code
under test's own :class:`bestchat.streaming.redis_bus.RedisBus` (exactly what a worker's frame
writer sends: one ``append_many`` per tick with one chunk per answer), and its clients follow
them through one ``gunicorn -k gevent -w 1`` web process over WebSocket (``subscribe`` with the
answer's id), REST SSE (``GET /api/v1/messages/<id>/stream``) and ``/v1`` SSE
(``POST /v1/chat/completions`` with ``stream``: the web process follows the answer it
dispatched; this script publishes its chunks). What it measures is the web worker's CPU
seconds (``/proc``) from the first published chunk to the last terminal event received,
divided by the chunks delivered to clients; it checks every client got seq 1..N once, in
order, and the terminal event.

    .venv/bin/python benchmarks/fanout_cpu.py --database-url postgresql://postgres@127.0.0.1/test_h2 \\
        --redis-url redis://127.0.0.1:6379/10 --ws 10 --sse 10 --v1 10

Each kind runs on its own (``--ws N``: N answers, each followed by ``--followers`` sockets;
``--sse N``; ``--v1 N``). The database's schema is dropped and migrated, the Redis db flushed.
Only the gevent web worker's CPU is counted (not Redis, PostgreSQL or this process, which also
runs the clients), so a loaded machine changes it less than wall-clock latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ws_load import client_frame  # noqa: E402

REPO = Path(os.environ.get("FANOUT_REPO", HERE.parent)).resolve()  # the code under test
BIN = HERE.parent / ".venv" / "bin"
PASSWORD = "bench horse battery staple"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                pass
    return out


# ---- clients -----------------------------------------------------------------------------------

class Follower:
    """One client's view: chunk seqs received, terminal seen."""

    def __init__(self, kind: str):
        self.kind = kind
        self.seqs: list[int] = []
        self.ended = asyncio.get_running_loop().create_future()

    def chunk(self, seq: int) -> None:
        self.seqs.append(seq)

    def end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(True)


async def ws_follow(port: int, token: str, conversation_id: str, message_id: str, follower: Follower,
                    subscribed: asyncio.Future) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    for frame in ({"type": "subscribe", "conversation_id": conversation_id, "message_id": message_id},
                  {"type": "ping"}):
        writer.write(client_frame(1, json.dumps(frame).encode()))
    while True:
        b0, b1 = await reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if b0 & 0x0F == 9:  # the server's keep-alive ping: unanswered, it closes the socket
            writer.write(client_frame(10, payload))
        if b0 & 0x0F != 1:
            continue
        event = json.loads(payload)
        kind = event["type"]
        if kind == "pong":
            subscribed.set_result(True)
        elif kind == "chunk":
            follower.chunk(event["seq"])
        elif kind in ("message.completed", "message.failed"):
            follower.end()
            writer.close()
            return
        elif kind == "error":
            raise RuntimeError(event)


async def sse_lines(port: int, request: bytes, on_line, ready: asyncio.Future) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n", 1)[0], head
    chunked = b"chunked" in head.lower()
    buffer = b""
    while True:
        if chunked:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            data = data[:-2]
            if not size:
                return
        else:
            data = await reader.read(65536)
            if not data:
                return
        if not ready.done():
            ready.set_result(True)
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if on_line(line):
                writer.close()
                return


async def rest_sse_follow(port: int, token: str, message_id: str, follower: Follower, ready: asyncio.Future) -> None:
    request = (f"GET /api/v1/messages/{message_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode()

    def on_line(line: bytes) -> bool:
        if line.startswith(b"data: "):
            event = json.loads(line[6:])
            if event["type"] == "chunk":
                follower.chunk(event["seq"])
            elif event["type"] in ("message.completed", "message.failed"):
                follower.end()
                return True
        return False

    await sse_lines(port, request, on_line, ready)


async def v1_follow(port: int, token: str, model: str, follower: Follower, ready: asyncio.Future) -> None:
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    def on_line(line: bytes) -> bool:
        if line == b"data: [DONE]":
            follower.end()
            return True
        if line.startswith(b"data: "):
            content = json.loads(line[6:])["choices"][0]["delta"].get("content")
            if content and content.startswith("t"):
                follower.chunk(int(content[1:]))
        return False

    await sse_lines(port, request, on_line, ready)


# ---- the run -----------------------------------------------------------------------------------

class Stack:
    def __init__(self, args: argparse.Namespace):
        from cryptography.fernet import Fernet

        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bestchat-fanout-"))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BESTCHAT_")},
            "BESTCHAT_ENV_NAME": "production",
            "BESTCHAT_SECRET_KEY": "bench-" + secrets.token_hex(32),
            "BESTCHAT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "BESTCHAT_DATABASE_URL": args.database_url,
            "BESTCHAT_REDIS_URL": args.redis_url,
            "BESTCHAT_INSTANCE_PATH": str(self.tmp / "instance"),
            "BESTCHAT_RATELIMIT_REGISTER_PER_IP": "1000/60",
            "BESTCHAT_RATELIMIT_LOGIN_PER_IP": "1000/60",
            "BESTCHAT_USER_MAX_ACTIVE_GENERATIONS": "0",
            "BESTCHAT_RATELIMIT_SEND_PER_USER": "",
            "BESTCHAT_OUTBOUND_ALLOW": '["127.0.0.0/8"]',  # the (never called) provider's address
            "PYTHONPATH": os.pathsep.join([str(REPO)] + [str(REPO / "plugins" / p) for p in
                                                        ("openai", "demo", "litellm", "tools", "context")]),
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        }
        self.web: subprocess.Popen | None = None

    def reset(self) -> None:
        import psycopg
        import redis

        with psycopg.connect(self.args.database_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
        subprocess.run([str(BIN / "python"), "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=REPO,
                       env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        redis.Redis.from_url(self.args.redis_url).flushdb()

    def start(self) -> None:
        out = open(self.tmp / "web.log", "ab")
        self.web = subprocess.Popen(
            [str(BIN / "python"), "-m", "gunicorn", "--worker-class", "gevent", "--workers", "1",
             "--bind", f"127.0.0.1:{self.args.port}", "--worker-connections", "2000", "wsgi:app"],
            cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.args.port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit(f"web process did not start: {(self.tmp / 'web.log').read_text()[-2000:]}")
        self.worker_pid = children(self.web.pid)[0]

    def stop(self) -> None:
        if self.web is not None:
            import signal

            os.killpg(self.web.pid, signal.SIGTERM)
            self.web.wait(timeout=15)

    def account(self) -> None:
        base = f"http://127.0.0.1:{self.args.port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            email = f"fanout-{secrets.token_hex(4)}@example.com"
            assert http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
            csrf = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()["csrf_token"]
            r = http.post("/api/v1/tokens", json={"name": "bench"}, headers={"X-CSRF-Token": csrf})
            self.token = r.json()["token"]
        self.http = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {self.token}"})
        r = self.http.post("/api/v1/providers", json={"provider": "openai", "api_key": "sk-bench-000000000000",
                                                       "base_url": "http://127.0.0.1:9/v1",
                                                       "options": {"context_window": 128000}})
        assert r.status_code == 201, r.text
        self.model = "openai/fanout"  # any name: the provider is never called

    def answer(self) -> tuple[str, str]:
        """A conversation and its pending answer (queued: no worker runs it)."""
        conversation = self.http.post("/api/v1/conversations", json={"title": "fanout"}).json()["id"]
        r = self.http.post(f"/api/v1/conversations/{conversation}/messages",
                           json={"content": "hi", "model": self.model})
        assert r.status_code == 202, r.text
        return conversation, r.json()["assistant_message"]["id"]

    def v1_answers(self, known: set[str]) -> list[tuple[str, str]]:
        import psycopg

        with psycopg.connect(self.args.database_url) as conn:
            rows = conn.execute("SELECT conversation_id, id FROM messages WHERE role = 'assistant'").fetchall()
        return [(str(c), str(m)) for c, m in rows if str(m) not in known]


def publisher():
    """The code under test's Redis bus and event builders, as a worker uses them."""
    import redis

    from bestchat.redis_client import PROTOCOL
    from bestchat.streaming import events
    from bestchat.streaming.redis_bus import RedisBus

    def bus_for(url: str) -> RedisBus:
        return RedisBus(redis.Redis.from_url(url, protocol=PROTOCOL, decode_responses=True), maxlen=10000, ttl=600)

    return bus_for, events


async def run_kind(stack: Stack, kind: str, n: int) -> dict:
    args = stack.args
    bus_for, events = publisher()
    bus = bus_for(args.redis_url)
    followers: list[Follower] = []
    tasks = []
    ready = []
    loop = asyncio.get_running_loop()
    if kind == "v1":
        known = {m for _, m in stack.v1_answers(set())}
        for _ in range(n):
            follower, future = Follower(kind), loop.create_future()
            followers.append(follower)
            ready.append(future)
            tasks.append(asyncio.ensure_future(v1_follow(args.port, stack.token, stack.model, follower, future)))
        await asyncio.wait_for(asyncio.gather(*ready), 60)
        answers = stack.v1_answers(known)
        assert len(answers) == n, answers
    else:
        answers = [stack.answer() for _ in range(n)]
        for conversation, message in answers:
            for _ in range(args.followers if kind == "ws" else 1):
                follower, future = Follower(kind), loop.create_future()
                followers.append(follower)
                ready.append(future)
                if kind == "ws":
                    tasks.append(asyncio.ensure_future(
                        ws_follow(args.port, stack.token, conversation, message, follower, future)))
                else:
                    tasks.append(asyncio.ensure_future(rest_sse_follow(args.port, stack.token, message, follower, future)))
        await asyncio.wait_for(asyncio.gather(*ready), 60)
    await asyncio.sleep(1.0)
    cpu0, t0 = cpu_seconds(stack.worker_pid), time.monotonic()
    for seq in range(1, args.tokens + 1):
        tick = t0 + seq * args.interval
        bus.append_many([(c, m, events.chunk(message_id=m, conversation_id=c, seq=seq, delta=f"t{seq}"))
                         for c, m in answers])
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    for c, m in answers:
        message = {"id": m, "conversation_id": c, "role": "assistant", "status": "complete",
                   "content": "".join(f"t{s}" for s in range(1, args.tokens + 1)), "parts": None}
        bus.append_final(c, m, {"type": events.COMPLETED, "message_id": m, "conversation_id": c,
                                "status": "complete", "last_seq": args.tokens, "message": message,
                                "usage": {}})
    await asyncio.wait([f.ended for f in followers], timeout=60)
    cpu = cpu_seconds(stack.worker_pid) - cpu0
    wall = time.monotonic() - t0
    for task in tasks:
        task.cancel()
    delivered = sum(len(f.seqs) for f in followers)
    expected = list(range(1, args.tokens + 1))
    wrong = sum(1 for f in followers if f.seqs != expected or not f.ended.done())
    for f in followers:
        if f.seqs != expected or not f.ended.done():
            log(f"{kind} follower: {len(f.seqs)} chunks, last {f.seqs[-3:]}, ended: {f.ended.done()}")
    return {"kind": kind, "answers": n, "followers": len(followers), "tokens_delivered": delivered,
            "bad_followers": wrong, "web_cpu_s": round(cpu, 3), "wall_s": round(wall, 2),
            "web_cpu_us_per_token": round(cpu / delivered * 1e6, 1) if delivered else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--port", type=int, default=18210)
    parser.add_argument("--ws", type=int, default=10, help="answers followed over WebSocket (0: skip)")
    parser.add_argument("--followers", type=int, default=1, help="sockets following each WebSocket answer")
    parser.add_argument("--sse", type=int, default=10, help="answers followed over REST SSE (0: skip)")
    parser.add_argument("--v1", type=int, default=10, help="/v1 streamed completions (0: skip)")
    parser.add_argument("--tokens", type=int, default=300, help="chunks per answer")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between chunks of an answer")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind (the table lists each)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    os.environ.update({"BESTCHAT_ENV_NAME": "production"})
    stack = Stack(args)
    stack.reset()
    stack.start()
    results = []
    try:
        stack.account()
        for kind in ("ws", "sse", "v1"):
            n = getattr(args, kind)
            for _ in range(args.repeat if n else 0):
                result = asyncio.run(run_kind(stack, kind, n))
                log(json.dumps(result))
                results.append(result)
    finally:
        stack.stop()
    print("\n| path | answers | followers | tokens delivered | bad | web CPU s | web CPU µs/token |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['kind']} | {r['answers']} | {r['followers']} | {r['tokens_delivered']} | {r['bad_followers']} "
              f"| {r['web_cpu_s']} | {r['web_cpu_us_per_token']} |")


if __name__ == "__main__":
    main()
