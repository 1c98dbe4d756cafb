#!/usr/bin/env python
"""Streaming benchmark: the whole chat path against a direct call of the same provider.

One script, bounded, everything on 127.0.0.1, every process it starts is killed on exit.

It starts a lean fake OpenAI-compatible server (``benchmarks/fast_upstream.py``: one asyncio
loop, the same SSE chunks as ``bestchat.testing.fake_openai``, each streamed token carrying its
emission wall-clock time), a production-mode stack (PostgreSQL database ``bench`` on a fresh
schema migrated with ``bestchat db upgrade``, Redis db 9 flushed, ``gunicorn -k gevent -w 1
wsgi:app``, one Celery gevent worker per core), registers a user and an API token over REST,
creates provider configs pointing at the fake server (native ``openai`` and ``litellm``), then
runs scenarios:

* path:   WebSocket ``send`` -> web -> Celery -> provider -> fake server -> Redis -> WebSocket,
          from a lean asyncio WebSocket client process (``benchmarks/ws_load.py``)
* direct: the same provider class called in this (gevent) process against the same fake server

and measures TTFT, per-token/per-chunk delay (arrival - emission, exact: the fake server stamps
every token with ``time.time()`` when it writes it), completed chats per second, CPU and RSS
of every process (``/proc``), lost/duplicated/reordered chunks (by ``seq``) and tokens (by
their index), persistence (the stored message equals what the socket received), the capacity
in concurrent 50 token/s streams, and the server memory of 1000 idle subscribed sockets.

    .venv/bin/python benchmarks/stream_bench.py            # default run (~8-10 min)
    .venv/bin/python benchmarks/stream_bench.py --quick    # smoke run (~3 min)
    .venv/bin/python benchmarks/stream_bench.py --only capacity --capacity-providers openai --levels 100,150

Results: ``benchmarks/results/<stamp>.json`` and ``benchmarks/results/<stamp>.md``.
"""

from __future__ import annotations

import sys

if len(sys.argv) > 1 and sys.argv[1] == "fake-server":
    # ---- the former fake provider process (plain threads, no gevent): `--upstream threaded` --
    # One thread per stream, ~0.06-0.15 ms of CPU per token; the default is fast_upstream.py.
    import argparse
    import time

    from bestchat.testing import fake_openai

    class _StampHandler(fake_openai._Handler):
        """Appends ``@<emission time>`` to every ``tokN`` token as it is written to the wire."""

        def _write_event(self, data: str) -> None:
            start = data.find('"content": "tok')
            if start >= 0:
                end = data.index(' "', start + 15)
                data = f"{data[:end]}@{time.time():.6f}{data[end:]}"
            super()._write_event(data)

    def _serve(argv: list[str]) -> None:
        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int, required=True)
        args = parser.parse_args(argv)
        server = fake_openai.FakeOpenAI("127.0.0.1", args.port,
                                        script=fake_openai.Script(tokens=200, delay=0.0))
        server._httpd.RequestHandlerClass = _StampHandler
        fake_openai.serve_until_interrupted(server)

    _serve(sys.argv[2:])
    sys.exit(0)

from gevent import monkey  # noqa: E402

monkey.patch_all()

import argparse  # noqa: E402
import atexit  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import gevent  # noqa: E402
import httpx  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from bestchat.testing.processes import free_port, stop_group, wait_for  # noqa: E402
from git_state import git_state  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = REPO / ".venv" / "bin"
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1/test"
PG_URL = "postgresql://postgres@127.0.0.1/bench"
REDIS_URL = "redis://127.0.0.1:6379/9"
TOKENS = 200
TOKEN_RE = re.compile(r"tok(\d+)@(\d+\.\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
PASSWORD = "bench horse battery staple"
CORES = os.cpu_count() or 1


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of ``values``."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def dist_ms(values: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max of seconds, in ms."""
    out: dict[str, float | int | None] = {"n": len(values)}
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)):
        value = pct(values, q)
        out[name] = None if value is None else round(value * 1000, 3)
    return out


# ---- processes ------------------------------------------------------------------------------

class Processes:
    """Every process this run starts; all killed (process group) at exit."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.items: dict[str, subprocess.Popen] = {}
        atexit.register(self.stop_all)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = open(self.tmp / f"{name}.log", "ab")
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.items[name] = process
        return process

    def log_text(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str) -> None:
        process = self.items.pop(name, None)
        if process is not None:
            stop_group(process, grace=10)

    def stop_all(self) -> None:
        for name in list(self.items):
            try:
                self.stop(name)
            except Exception as error:  # noqa: BLE001 - keep killing the others
                print(f"could not stop {name}: {error}", file=sys.stderr)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (scan of /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def proc_sample(pid: int) -> tuple[int, int] | None:
    """(utime+stime ticks, RSS kB) of one process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as handle:
            rss_pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return int(fields[11]) + int(fields[12]), rss_pages * PAGE_KB


# ---- the stack ------------------------------------------------------------------------------

class Stack:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bestchat-bench-"))
        self.procs = Processes(self.tmp)
        self.fake_port = free_port()
        self.web_port = 0
        self.worker_names: list[str] = []
        from cryptography.fernet import Fernet

        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BESTCHAT_")},
            "BESTCHAT_ENV_NAME": "production",
            "BESTCHAT_SECRET_KEY": "bench-" + secrets.token_hex(32),
            "BESTCHAT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "BESTCHAT_DATABASE_URL": PG_URL,
            "BESTCHAT_REDIS_URL": REDIS_URL,
            "BESTCHAT_INSTANCE_PATH": str(self.tmp / "instance"),
            "BESTCHAT_RATELIMIT_REGISTER_PER_IP": "1000/60",
            "BESTCHAT_RATELIMIT_LOGIN_PER_IP": "1000/60",
            # One account drives every stream: no per-user share of the slots, no send rate.
            "BESTCHAT_USER_MAX_ACTIVE_GENERATIONS": "0",
            "BESTCHAT_RATELIMIT_SEND_PER_USER": "",
            "BESTCHAT_OUTBOUND_ALLOW": '["127.0.0.0/8"]',  # the fake provider is on loopback
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            **{f"BESTCHAT_{setting.partition('=')[0]}": setting.partition("=")[2] for setting in args.set},
        }
        self.pg_pid_exclude: set[int] = set()

    # ---- setup ----------------------------------------------------------------------------

    def start_fake(self) -> None:
        if self.args.upstream == "threaded":  # the former one: bestchat.testing.fake_openai, one thread per stream
            argv = [str(BIN / "python"), __file__, "fake-server", "--port", str(self.fake_port)]
        else:
            argv = [str(BIN / "python"), str(HERE / "fast_upstream.py"), "--port", str(self.fake_port)]
        self.procs.spawn("fake", argv, self.env)
        # (the fast upstream lists no models: it answers, 404)
        wait_for(lambda: httpx.get(f"{self.fake_url}/models").status_code in (200, 404), 20, "fake server")

    def start_client(self) -> None:
        self.client = LoadClient(self.procs, self.env)

    @property
    def fake_url(self) -> str:
        return f"http://127.0.0.1:{self.fake_port}/v1"

    def reset_database(self) -> None:
        import psycopg
        import redis

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'bench'").fetchone():
                conn.execute("CREATE DATABASE bench")
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
        subprocess.run([str(BIN / "bestchat"), "db", "upgrade"], cwd=REPO, env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        redis.Redis.from_url(REDIS_URL).flushdb()

    def start_servers(self, frame_ms: int | None) -> None:
        env = dict(self.env)
        if frame_ms is not None:
            env["BESTCHAT_STREAM_FRAME_MS"] = str(frame_ms)
        self.web_port = free_port()
        # The flags of `bestchat serve --workers N` (N gunicorn gevent workers, default 1).
        self.procs.spawn("web", [str(BIN / "gunicorn"), "--worker-class", "gevent",
                                 "--workers", str(self.args.web_workers),
                                 "--bind", f"127.0.0.1:{self.web_port}", "--worker-connections", "2000",
                                 "--graceful-timeout", "10", "--access-logfile", "-", "wsgi:app"], env)
        self.worker_names = []
        for index in range(self.args.workers):
            name = f"worker{index}"
            # The flags of `bestchat worker`, plus a distinct node name.
            self.procs.spawn(name, [str(BIN / "celery"), "-A", "celery_worker", "worker", "-P", "gevent",
                                    "-c", "200", "--loglevel", "INFO", "-n", f"bench{index}@%h"], env)
            self.worker_names.append(name)
        wait_for(lambda: httpx.get(f"{self.base}/healthz").status_code == 200, 30, "web process")
        for name in self.worker_names:
            wait_for(lambda: "ready." in self.procs.log_text(name), 60, f"celery {name}")

    def stop_servers(self) -> None:
        self.procs.stop("web")
        for name in self.worker_names:
            self.procs.stop(name)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}/ws"

    # ---- processes to measure -------------------------------------------------------------

    def measured(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        web = self.procs.items.get("web")
        if web is not None:
            tree = descendants(web.pid)
            groups["web (gunicorn master)"] = [web.pid]
            groups["web (gevent worker)"] = [p for p in tree if p != web.pid]
        for name in self.worker_names:
            process = self.procs.items.get(name)
            if process is not None:
                groups[f"celery {name}"] = descendants(process.pid)
        fake = self.procs.items.get("fake")
        if fake is not None:
            groups["fake provider"] = descendants(fake.pid)
        groups["redis-server"] = [self.redis_pid]
        groups["postgres (bench backends + bg)"] = self.pg_pids()
        client = self.procs.items.get("client")
        if client is not None:
            groups["bench client"] = [client.pid]  # the WebSocket load client (ws_load.py)
        groups["bench main (direct calls)"] = [os.getpid()]  # this process: REST setup, direct baseline
        return groups

    @property
    def redis_pid(self) -> int:
        import redis

        if not hasattr(self, "_redis_pid"):
            self._redis_pid = int(redis.Redis.from_url(REDIS_URL).info("server")["process_id"])
        return self._redis_pid

    def pg_pids(self) -> list[int]:
        rows = self.pg.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = 'bench' OR backend_type <> 'client backend'"
        ).fetchall()
        return [r[0] for r in rows if r[0] not in self.pg_pid_exclude]

    @property
    def pg(self):
        if not hasattr(self, "_pg"):
            import psycopg

            self._pg = psycopg.connect(PG_URL, autocommit=True)
            self.pg_pid_exclude.add(self._pg.info.backend_pid)
        return self._pg

    def snapshot(self) -> dict[str, dict[int, tuple[int, int]]]:
        out: dict[str, dict[int, tuple[int, int]]] = {"_system": {0: (system_busy_ticks(), 0)}}
        for group, pids in self.measured().items():
            out[group] = {pid: s for pid in pids if (s := proc_sample(pid)) is not None}
        return out

    def stop(self, keep_logs: Path | None = None) -> None:
        if hasattr(self, "_pg"):
            self._pg.close()
        self.procs.stop_all()
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for path in self.tmp.glob("*.log"):
                shutil.copy(path, keep_logs / path.name)
        shutil.rmtree(self.tmp, ignore_errors=True)


def system_busy_ticks() -> int:
    """Busy CPU ticks of the whole machine, all cores (/proc/stat)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:9]]
    return sum(values) - values[3] - values[4]  # minus idle and iowait


def wait_quiet(max_wait: float, threshold_pct: float) -> dict[str, Any]:
    """Wait (at most ``max_wait`` s) until the machine's busy CPU over 3 s is under
    ``threshold_pct`` % of all cores: other work on the machine skews every number here."""
    started = time.time()
    while True:
        before = system_busy_ticks()
        time.sleep(3)
        busy = 100 * (system_busy_ticks() - before) / CLK_TCK / 3 / CORES
        waited = time.time() - started
        if busy < threshold_pct or waited >= max_wait:
            return {"busy_pct_of_all_cores": round(busy, 1), "waited_s": round(waited, 1),
                    "quiet": busy < threshold_pct}
        log(f"machine busy {busy:.0f}% of all cores before the run; waiting for it to be quiet")


def usage_between(before: dict, after: dict, tokens: int, seconds: float) -> dict[str, Any]:
    """CPU ms (total, per token, % of one core) and RSS of each process group, plus the whole
    machine's busy CPU and the part of it used by processes this run does not measure (other
    users of the machine, kernel threads)."""
    out: dict[str, Any] = {}
    system_ms = (after["_system"][0][0] - before["_system"][0][0]) * 1000 / CLK_TCK
    measured_ms = 0.0
    for group, now in after.items():
        if group == "_system":
            continue
        then = before.get(group, {})
        ticks = sum(cpu - then.get(pid, (0, 0))[0] for pid, (cpu, _) in now.items())
        cpu_ms = ticks * 1000 / CLK_TCK
        out[group] = {
            "cpu_ms": round(cpu_ms, 1),
            "cpu_ms_per_token": round(cpu_ms / tokens, 4) if tokens else None,
            "cpu_pct_of_core": round(100 * cpu_ms / 1000 / seconds, 1) if seconds else None,
            "rss_mb": round(sum(rss for _, rss in now.values()) / 1024, 1),
            "rss_mb_before": round(sum(rss for _, rss in then.values()) / 1024, 1),
            "processes": len(now),
        }
        measured_ms += cpu_ms
    out["_machine"] = {"busy_pct_of_all_cores": round(100 * system_ms / 1000 / seconds / CORES, 1) if seconds else None,
                       "unmeasured_cpu_pct_of_core": round(100 * (system_ms - measured_ms) / 1000 / seconds, 1)
                       if seconds else None,
                       "loadavg": os.getloadavg()[0]}
    return out


# ---- clients --------------------------------------------------------------------------------

class LoadClient:
    """The WebSocket load client: ``ws_load.py`` (one asyncio loop) in a child process, driven
    with one JSON command per line (see its docstring). Its CPU is measured on its own."""

    def __init__(self, procs: Processes, env: dict[str, str]):
        out = open(procs.tmp / "client.log", "ab")
        self.process = subprocess.Popen([str(BIN / "python"), str(HERE / "ws_load.py")], cwd=REPO, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=out,
                                        start_new_session=True)
        procs.items["client"] = self.process
        self.procs = procs

    def call(self, cmd: str, **kwargs: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **kwargs}).encode() + b"\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load client died: {self.procs.log_text('client')[-2000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load client {cmd}: {answer['error']}")
        return answer

    def open(self, ws_url: str, token: str, conversations: list[str]) -> dict[str, Any]:
        """One socket per conversation, subscribed to it (replaces the previous sockets)."""
        answer = self.call("open", ws_url=ws_url, token=token, conversations=conversations)
        if answer["opened"] != len(conversations):
            raise RuntimeError(f"opened {answer['opened']} of {len(conversations)} sockets: {answer['errors']}")
        return answer

    def run(self, model: str, starts: list[float], *, turns: int | None = None, end: float | None = None,
            deadline: float, close: bool = True) -> dict[str, Any]:
        """Socket ``i`` starts at wall time ``starts[i]`` and chats back to back: ``turns`` answers,
        or until ``end``. The turns stay in the client until :meth:`fetch`."""
        return self.call("run", model=model, starts=starts, turns=turns, end=end, deadline=deadline, close=close)

    def fetch(self) -> list[Turn]:
        return [Turn(**{**t, "chunks": [tuple(c) for c in t["chunks"]]}) for t in self.call("fetch")["turns"]]

@dataclass
class Turn:
    """One chat answer as the client saw it."""
    t_send: float
    t_first: float | None = None
    t_created: float | None = None  # arrival of the assistant's message.created
    t_end: float | None = None
    message_id: str | None = None
    status: str | None = None
    error: str | None = None
    chunks: list[tuple[float, int, str]] = field(default_factory=list)  # (arrival, seq, delta)
    last_seq: int | None = None


class Account:
    def __init__(self, base: str):
        self.base = base
        with httpx.Client(base_url=base, timeout=30) as http:
            email = f"bench-{secrets.token_hex(4)}@example.com"
            r = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
            assert r.status_code == 201, r.text
            login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            csrf = login.json()["csrf_token"]
            r = http.post("/api/v1/tokens", json={"name": "bench"}, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 201, r.text
            self.token = r.json()["token"]
        self.http = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {self.token}"},
                                 limits=httpx.Limits(max_connections=50))

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"/api/v1{path}", **kwargs)

    def conversation(self) -> str:
        r = self.api("POST", "/conversations", json={"title": "bench"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def provider(self, provider: str, base_url: str) -> None:
        # The fake model's name is unknown to litellm's model map, so the connection says its
        # window, as an operator does for such a model: gpt-4o-mini's, which the fake imitates (a
        # benchmark chat then never needs a context strategy, as with the real model).
        r = self.api("POST", "/providers", json={"provider": provider, "api_key": "sk-bench-000000000000",
                                                  "base_url": base_url, "options": {"context_window": 128000}})
        assert r.status_code == 201, r.text


def direct_turn(provider: Any, model: str) -> Turn:
    from bestchat.providers.base import TextDelta

    turn = Turn(time.time())
    seq = 0
    try:
        for event in provider.stream(model, [{"role": "user", "content": "benchmark question"}]):
            if isinstance(event, TextDelta) and event.text:
                now = time.time()
                seq += 1
                if turn.t_first is None:
                    turn.t_first = now
                turn.chunks.append((now, seq, event.text))
        turn.status = "complete"
    except Exception as error:  # noqa: BLE001 - counted as a failed turn
        turn.error = f"{type(error).__name__}: {error}"[:300]
    turn.t_end = time.time()
    turn.last_seq = seq
    return turn


def make_provider(kind: str, fake_url: str) -> Any:
    from bestchat.providers.base import ProviderSettings
    from bestchat.security.outbound import Policy

    settings = ProviderSettings(api_key="sk-bench-000000000000", base_url=fake_url,
                                outbound=Policy.allowing("127.0.0.0/8"))
    if kind == "openai":
        from bestchat_openai import OpenAIProvider

        return OpenAIProvider(settings)
    from bestchat_litellm import LiteLLMProvider

    return LiteLLMProvider(settings)


def model_name(kind: str, delay: float, tokens: int = TOKENS) -> tuple[str, str]:
    """(model id for the path, model name for a direct call of the provider)."""
    fake = f"bench?tokens={tokens}&delay={delay:g}"
    direct = fake if kind == "openai" else f"openai/{fake}"
    return f"{kind}/{direct}", direct


# ---- analysis -------------------------------------------------------------------------------

def analyse(turns: list[Turn], tokens: int = TOKENS) -> dict[str, Any]:
    """TTFT, per-token and per-chunk delay, and integrity counts of a set of turns."""
    ttft, token_delay, chunk_delay, durations, created, worker = [], [], [], [], [], []
    integrity = {"turns": len(turns), "failed_turns": 0, "lost_chunks": 0, "duplicated_chunks": 0,
                 "reordered_chunks": 0, "lost_tokens": 0, "duplicated_tokens": 0, "reordered_tokens": 0,
                 "chunks": 0, "tokens": 0}
    errors: list[str] = []
    for turn in turns:
        if turn.error or turn.status != "complete":
            integrity["failed_turns"] += 1
            if len(errors) < 5:
                errors.append(turn.error or f"status {turn.status}")
        if turn.t_first is not None:
            ttft.append(turn.t_first - turn.t_send)
        if turn.t_created is not None:
            created.append(turn.t_created - turn.t_send)
            if turn.t_first is not None:
                worker.append(turn.t_first - turn.t_created)
        if turn.t_end is not None:
            durations.append(turn.t_end - turn.t_send)
        seqs = [seq for _, seq, _ in turn.chunks]
        integrity["chunks"] += len(seqs)
        top = max(seqs + [turn.last_seq or 0])
        seen = _count_order(seqs, integrity, "chunks")
        integrity["lost_chunks"] += len(set(range(1, top + 1)) - seen)
        token_indices: list[int] = []
        for arrival, _, delta in turn.chunks:
            emitted = []
            for index_text, stamp in TOKEN_RE.findall(delta):
                token_indices.append(int(index_text))
                emitted.append(float(stamp))
                token_delay.append(arrival - float(stamp))
            if emitted:
                chunk_delay.append(arrival - max(emitted))
        seen_tokens = _count_order(token_indices, integrity, "tokens")
        integrity["tokens"] += len(seen_tokens)
        if not turn.error:
            integrity["lost_tokens"] += len(set(range(tokens)) - seen_tokens)
    return {"ttft_ms": dist_ms(ttft), "send_to_created_ms": dist_ms(created),
            "created_to_first_chunk_ms": dist_ms(worker), "token_delay_ms": dist_ms(token_delay),
            "chunk_delay_ms": dist_ms(chunk_delay), "turn_ms": dist_ms(durations),
            "integrity": integrity, "errors": errors,
            "tokens_per_chunk": round(integrity["tokens"] / integrity["chunks"], 2) if integrity["chunks"] else None}


def _count_order(indices: list[int], integrity: dict[str, int], what: str) -> set[int]:
    """Add the duplicated and reordered ``indices`` (in arrival order) to ``integrity``'s
    ``duplicated_<what>`` and ``reordered_<what>``; the distinct indices seen."""
    seen: set[int] = set()
    highest = -1
    for index in indices:
        if index in seen:
            integrity[f"duplicated_{what}"] += 1
            continue
        if index < highest:
            integrity[f"reordered_{what}"] += 1
        seen.add(index)
        highest = max(highest, index)
    return seen


def check_persistence(stack: Stack, turns: list[Turn]) -> dict[str, int]:
    """Stored message == what the socket received (content, last_seq, status complete)."""
    ids = [t.message_id for t in turns if t.message_id]
    rows = {str(r[0]): r[1:] for r in stack.pg.execute(
        "SELECT id, status, last_seq, content FROM messages WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()}
    bad = {"checked": len(ids), "missing": 0, "status_not_complete": 0, "content_mismatch": 0,
           "last_seq_mismatch": 0}
    for turn in turns:
        row = rows.get(turn.message_id or "")
        if row is None:
            bad["missing"] += 1
            continue
        status, last_seq, content = row
        if status != "complete":
            bad["status_not_complete"] += 1
        received = "".join(d for _, _, d in sorted(turn.chunks, key=lambda c: c[1]))
        if content != received:
            bad["content_mismatch"] += 1
        if last_seq != len(turn.chunks):
            bad["last_seq_mismatch"] += 1
    return bad


# ---- scenarios ------------------------------------------------------------------------------

class Bench:
    def __init__(self, stack: Stack, account: Account, args: argparse.Namespace):
        self.stack = stack
        self.account = account
        self.args = args
        self.providers: dict[str, Any] = {}  # the provider objects of the direct calls, made on first use

    def _measure(self, name: str, body: Callable[[], list[Turn] | Callable[[], list[Turn]]], *,
                 persistence: bool) -> dict[str, Any]:
        """Runs ``body`` between two CPU snapshots. ``body`` returns the turns, or a function that
        fetches them from the load client (called after the second snapshot: the transfer of the
        turns between processes is not part of the scenario)."""
        before = self.stack.snapshot()
        started = time.time()
        turns = body()
        elapsed = time.time() - started
        after = self.stack.snapshot()
        if callable(turns):
            turns = turns()
        result = analyse(turns)
        result["elapsed_s"] = round(elapsed, 3)
        result["chats_per_s"] = round(sum(1 for t in turns if t.status == "complete") / elapsed, 2)
        result["processes"] = usage_between(before, after, result["integrity"]["tokens"], elapsed)
        if persistence:
            result["persistence"] = check_persistence(self.stack, turns)
        log(f"{name}: ttft p50/p95/p99 {result['ttft_ms']['p50']}/{result['ttft_ms']['p95']}/"
            f"{result['ttft_ms']['p99']} ms, token delay p95 {result['token_delay_ms']['p95']} ms, "
            f"chunk delay p95 {result['chunk_delay_ms']['p95']} ms, {result['chats_per_s']} chats/s, "
            f"failed {result['integrity']['failed_turns']}, {result['errors'][:1]}")
        return result

    @staticmethod
    def _offsets(concurrency: int, delay: float, stagger: bool) -> list[float]:
        """Start offsets: all at once (a burst of sends), or spread evenly over one answer's
        length so that ``concurrency`` answers are in flight while the sends do not coincide."""
        if not stagger:
            return [0.0] * concurrency
        return [i * TOKENS * delay / concurrency for i in range(concurrency)]

    def path_closed_loop(self, kind: str, delay: float, concurrency: int, turns_each: int,
                         stagger: bool = False) -> Callable[[], list[Turn]]:
        """``concurrency`` sockets (opened here), each doing ``turns_each`` answers back to back
        from its start offset; the sockets are closed at the end. Returns the fetch of the turns."""
        model, _ = model_name(kind, delay)
        self._sockets(concurrency)
        offsets = self._offsets(concurrency, delay, stagger)
        now = time.time()
        # The old client's limit: 120 s without a frame failed the scenario.
        deadline = now + max(offsets) + turns_each * (TOKENS * delay + 120)
        answer = self.client.run(model, [now + o for o in offsets], turns=turns_each, deadline=deadline)
        if answer["unfinished"] or answer["errors"]:
            raise RuntimeError(f"path {kind} x{concurrency}: {answer['unfinished']} sockets unfinished, "
                               f"errors {answer['errors']}")
        return self.client.fetch

    def direct_closed_loop(self, kind: str, delay: float, concurrency: int, turns_each: int,
                           stagger: bool = False) -> list[Turn]:
        _, model = model_name(kind, delay)
        if kind not in self.providers:
            # the direct calls run like a worker's: the provider warmed up, then the startup
            # objects (litellm's too) out of the collector's full passes (bestchat.gc_freeze)
            from bestchat.gc_freeze import freeze_startup_objects

            self.providers[kind] = make_provider(kind, self.stack.fake_url)
            type(self.providers[kind]).warm_up()
            freeze_startup_objects()
        provider = self.providers[kind]
        turns: list[Turn] = []

        def run(offset: float) -> None:
            gevent.sleep(offset)
            for _ in range(turns_each):
                turns.append(direct_turn(provider, model))
        gevent.joinall([gevent.spawn(run, o) for o in self._offsets(concurrency, delay, stagger)], raise_error=True)
        return turns

    @property
    def client(self) -> LoadClient:
        return self.stack.client

    def _sockets(self, count: int) -> dict[str, Any]:
        """``count`` new conversations, and one socket subscribed to each in the load client."""
        pool = Pool(50)
        conversations = list(pool.imap_unordered(lambda _: self.account.conversation(), range(count)))
        return self.client.open(self.stack.ws_url, self.account.token, conversations)

    def warm_up(self, kind: str) -> None:
        self.path_closed_loop(kind, 0, 2 * self.args.workers, 2)()
        self.direct_closed_loop(kind, 0, 2, 2)

    def latency(self, kind: str, delay: float, concurrency: int, turns_each: int,
                stagger: bool = False) -> dict[str, Any]:
        mode = "staggered" if stagger else "burst"
        tag = f"{kind} {int(delay * 1000)}ms x{concurrency} {mode}"
        path = self._measure(f"path   {tag}", lambda: self.path_closed_loop(kind, delay, concurrency, turns_each, stagger),
                             persistence=True)
        direct = self._measure(f"direct {tag}", lambda: self.direct_closed_loop(kind, delay, concurrency, turns_each, stagger),
                               persistence=False)
        overhead = {}
        for metric in ("ttft_ms", "token_delay_ms", "chunk_delay_ms"):
            overhead[metric] = {q: _sub(path[metric][q], direct[metric][q]) for q in ("p50", "p95", "p99")}
        return {"provider": kind, "delay_ms": delay * 1000, "concurrency": concurrency, "mode": mode,
                "turns": concurrency * turns_each, "path": path, "direct": direct, "overhead": overhead}

    def capacity_level(self, kind: str, streams: int) -> dict[str, Any]:
        """``streams`` sockets each chatting back to back at 20 ms/token; starts spread over one
        answer's length so that about ``streams`` answers are always in flight; the criteria are
        computed over answers started in the steady window."""
        model, _ = model_name(kind, 0.02)
        answer_s = TOKENS * 0.02
        window = self.args.capacity_window
        self._sockets(streams)
        t0 = time.time() + 0.5
        end = t0 + answer_s + window
        starts = [t0 + random.uniform(0, answer_s) for _ in range(streams)]

        before = self.stack.snapshot()
        started = time.time()
        # Each socket chats back to back until `end`; sockets still busy 90 s later are stopped
        # and counted as unfinished. The sockets are closed before the answer comes back.
        answer = self.client.run(model, starts, end=end, deadline=started + answer_s + window + 90)
        unfinished, crashed = answer["unfinished"], answer["errors"]
        elapsed = time.time() - started
        after = self.stack.snapshot()
        turns = self.client.fetch()
        steady = [t for t in turns if t.t_send >= t0 + answer_s]
        result = analyse(steady)
        every = analyse(turns)
        result["all_turns_integrity"] = every["integrity"]
        result["persistence"] = check_persistence(self.stack, turns)
        result["processes"] = usage_between(before, after, every["integrity"]["tokens"], elapsed)
        result["streams"] = streams
        result["steady_turns"] = len(steady)
        result["unfinished_clients"] = unfinished
        result["client_errors"] = crashed[:5]
        ok = (not unfinished and not crashed and result["ttft_ms"]["p95"] is not None and result["ttft_ms"]["p95"] < 500
              and result["chunk_delay_ms"]["p95"] is not None and result["chunk_delay_ms"]["p95"] < 50
              and every["integrity"]["failed_turns"] == 0)
        result["meets_criteria"] = ok
        log(f"capacity {kind} {streams} streams: ttft p95 {result['ttft_ms']['p95']} ms, chunk delay p95 "
            f"{result['chunk_delay_ms']['p95']} ms (token delay p95 {result['token_delay_ms']['p95']}), "
            f"failed {every['integrity']['failed_turns']} -> {'OK' if ok else 'FAIL'}")
        return result

    def capacity(self, kind: str) -> dict[str, Any]:
        levels = []
        best, failed = 0, None
        for streams in self.args.levels:
            level = self.capacity_level(kind, streams)
            levels.append(level)
            if not level["meets_criteria"]:
                failed = streams
                break
            best = streams
        # Refine between the last level that held and the first that failed (bisection).
        for _ in range(self.args.refine):
            if failed is None or failed - best <= max(2, best // 10):
                break
            streams = (best + failed) // 2
            level = self.capacity_level(kind, streams)
            levels.append(level)
            if level["meets_criteria"]:
                best = streams
            else:
                failed = streams
        return {"provider": kind, "capacity_streams": best, "first_failing_level": failed,
                "levels": sorted(levels, key=lambda level: level["streams"]), "ceiling_reached": failed is None}

    def idle_sockets(self, count: int) -> dict[str, Any]:
        """``count`` authenticated sockets, each subscribed to its own conversation."""
        pool = Pool(50)
        conversations = list(pool.imap_unordered(lambda _: self.account.conversation(), range(count)))
        gevent.sleep(1)
        web = self.stack.measured()["web (gevent worker)"]
        rss_before = sum(proc_sample(p)[1] for p in web)
        # In the load client: 50 handshakes at a time, each followed by subscribe + ping/pong.
        opened = self.client.call("open", ws_url=self.stack.ws_url, token=self.account.token,
                                  conversations=conversations)
        open_s = opened["open_s"]
        gevent.sleep(2)
        rss_after = sum(proc_sample(p)[1] for p in web)
        # Every socket still usable: a ping round trip on each (all at once).
        alive = self.client.call("ping")["alive"]
        self.client.call("close")
        gevent.sleep(2)
        rss_closed = sum(proc_sample(p)[1] for p in web)
        result = {"sockets": count, "alive": alive, "open_s": round(open_s, 2),
                  "web_rss_mb_before": round(rss_before / 1024, 1), "web_rss_mb_open": round(rss_after / 1024, 1),
                  "web_rss_mb_after_close": round(rss_closed / 1024, 1),
                  "kb_per_socket": round((rss_after - rss_before) / count, 1)}
        log(f"idle sockets: {result}")
        return result


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


# ---- report ---------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    git = results.get("git") or {}
    lines = [f"# Streaming benchmark run {results['stamp']}", "",
             f"Machine: {results['machine']}. Command: `{results['command']}`. "
             f"Total {results['total_s']:.0f} s. Commit {git.get('commit', '?')[:10]}"
             f" ({len(git.get('changed_files', []))} files changed in the work tree).", ""]
    for section in results["latency"]:
        frame = section["frame_ms"]
        lines += [f"## Latency, STREAM_FRAME_MS={frame}", "",
                  "| provider | ms/token | sends | chats | TTFT path p50/p95/p99 | TTFT direct p50/p95/p99 | "
                  "TTFT overhead p50/p95/p99 | token delay path p50/p95 (direct p95) | chunk delay path p95 | "
                  "tokens/chunk | chats/s path (direct) | lost/dup/reord chunks | lost/dup/reord tokens | persisted ok |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in section["scenarios"]:
            p, d, o = r["path"], r["direct"], r["overhead"]
            i = p["integrity"]
            per = p.get("persistence", {})
            bad_persist = sum(v for k, v in per.items() if k != "checked")
            lines.append(
                f"| {r['provider']} | {r['delay_ms']:g} | {r['mode']} | {r['turns']} (x{r['concurrency']}) | "
                f"{_tri(p['ttft_ms'])} | {_tri(d['ttft_ms'])} | {_tri(o['ttft_ms'])} | "
                f"{p['token_delay_ms']['p50']}/{p['token_delay_ms']['p95']} ({d['token_delay_ms']['p95']}) | "
                f"{p['chunk_delay_ms']['p95']} | {p['tokens_per_chunk']} | {p['chats_per_s']} ({d['chats_per_s']}) | "
                f"{i['lost_chunks']}/{i['duplicated_chunks']}/{i['reordered_chunks']} | "
                f"{i['lost_tokens']}/{i['duplicated_tokens']}/{i['reordered_tokens']} | "
                f"{per.get('checked', 0) - bad_persist}/{per.get('checked', 0)} |")
        lines += ["", "Path TTFT split (ms, p50/p95/p99): `send` -> the assistant's `message.created` "
                  "(web: the send command), then -> first `chunk` (Celery hop, worker, provider, Redis, web).", "",
                  "| provider | ms/token | sends | send -> created | created -> first chunk |", "|---|---|---|---|---|"]
        for r in section["scenarios"]:
            lines.append(f"| {r['provider']} | {r['delay_ms']:g} | {r['mode']} | {_tri(r['path']['send_to_created_ms'])} | "
                         f"{_tri(r['path']['created_to_first_chunk_ms'])} |")
        lines += ["", "CPU ms per delivered token (and % of one core) by process; machine = busy % of all "
                  "cores, other = CPU % of one core used by processes this run does not measure:", "",
                  "| scenario | " + " | ".join(_groups(section)) + " | machine busy / other |",
                  "|---|" + "---|" * (len(_groups(section)) + 1)]
        for r in section["scenarios"]:
            for side in ("path", "direct"):
                procs = r[side]["processes"]
                lines.append(f"| {side} {r['provider']} {r['delay_ms']:g}ms x{r['concurrency']} {r['mode']} | " + " | ".join(
                    f"{procs[g]['cpu_ms_per_token']} ({procs[g]['cpu_pct_of_core']}%)" if g in procs else "-"
                    for g in _groups(section)) + f" | {_machine(procs)} |")
        lines.append("")
    for cap in results["capacity"]:
        lines += [f"## Capacity, {cap['provider']}: {cap['capacity_streams']} concurrent 50 token/s streams"
                  + (" (the highest level tried)" if cap["ceiling_reached"]
                     else f" ({cap.get('first_failing_level')} failed)"), "",
                  "Criteria: TTFT p95 < 500 ms and chunk delay p95 < 50 ms over the answers started in the "
                  "steady window, no failed answer. Chunk delay = arrival - emission of the newest token in "
                  "the chunk; token delay = arrival - emission of every token (includes the frame coalescing).", "",
                  "| streams | steady answers | TTFT p50/p95/p99 | chunk delay p50/p95/p99 | token delay p95 | "
                  "failed | lost/dup/reord chunks | web CPU % | workers CPU % | redis % | postgres % | fake % | client % | "
                  "fake / client µs CPU per token | machine busy / other | OK |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for level in cap["levels"]:
            procs = level["processes"]
            workers = sum(v["cpu_pct_of_core"] for k, v in procs.items() if k.startswith("celery"))
            i = level["all_turns_integrity"]
            lines.append(
                f"| {level['streams']} | {level['steady_turns']} | {_tri(level['ttft_ms'])} | "
                f"{_tri(level['chunk_delay_ms'])} | {level['token_delay_ms']['p95']} | {i['failed_turns']} | "
                f"{i['lost_chunks']}/{i['duplicated_chunks']}/{i['reordered_chunks']} | "
                f"{procs['web (gevent worker)']['cpu_pct_of_core']} | {workers:.1f} | "
                f"{procs['redis-server']['cpu_pct_of_core']} | {procs['postgres (bench backends + bg)']['cpu_pct_of_core']} | "
                f"{procs['fake provider']['cpu_pct_of_core']} | {procs['bench client']['cpu_pct_of_core']} | "
                f"{_us(procs['fake provider'])} / {_us(procs['bench client'])} | "
                f"{_machine(procs)} | {'yes' if level['meets_criteria'] else 'no'} |")
        lines.append("")
    if results.get("idle_sockets"):
        s = results["idle_sockets"]
        lines += ["## Idle sockets", "",
                  f"{s['sockets']} authenticated sockets, each subscribed to its own conversation "
                  f"({s['alive']} answered a ping afterwards): web worker RSS {s['web_rss_mb_before']} MB -> "
                  f"{s['web_rss_mb_open']} MB, **{s['kb_per_socket']} KB per socket**; opened in {s['open_s']} s.", ""]
    return "\n".join(lines)


def _tri(d: dict[str, Any]) -> str:
    return f"{d['p50']}/{d['p95']}/{d['p99']}"


def _us(group: dict[str, Any]) -> str:
    per_token = group.get("cpu_ms_per_token")
    return "-" if per_token is None else f"{per_token * 1000:.0f}"


def _machine(procs: dict[str, Any]) -> str:
    m = procs.get("_machine") or {}
    return f"{m.get('busy_pct_of_all_cores')}% / {m.get('unmeasured_cpu_pct_of_core')}%"


def _groups(section: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for r in section["scenarios"]:
        for side in ("path", "direct"):
            for g in r[side]["processes"]:
                if g not in names and g != "_machine":
                    names.append(g)
    return names


# ---- main -----------------------------------------------------------------------------------

def config_default(name: str) -> Any:
    """A setting's default, read from ``config/defaults.py`` (what the servers run with when the
    script does not set it)."""
    import runpy

    return runpy.run_path(str(REPO / "config" / "defaults.py")).get(name)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", default="openai,litellm", help="comma-separated: openai,litellm")
    parser.add_argument("--workers", type=int, default=CORES, help="Celery gevent workers (default: one per core)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a server setting for this run, passed as BESTCHAT_NAME (repeatable)")
    parser.add_argument("--web-workers", type=int, default=1,
                        help="gunicorn gevent web processes (default 1; the sum of their CPU is the web column)")
    parser.add_argument("--concurrency", type=int, default=10, help="concurrent chats of the latency scenarios")
    parser.add_argument("--turns-slow", type=int, default=3, help="answers per chat at 20 ms/token")
    parser.add_argument("--turns-fast", type=int, default=10, help="answers per chat at 0 ms/token")
    parser.add_argument("--frame-ms", default="default,0",
                        help="STREAM_FRAME_MS values for the latency scenarios ('default': config/defaults.py's)")
    parser.add_argument("--levels", default=None,
                        help="capacity ramp: concurrent 50 token/s streams (default 10,25,50,100,150,200,250,300; "
                             "--quick: 10,50)")
    parser.add_argument("--capacity-providers", default="openai,litellm")
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after the first failing level")
    parser.add_argument("--capacity-window", type=float, default=8.0, help="steady seconds per capacity level")
    parser.add_argument("--sockets", type=int, default=None, help="idle sockets (0 to skip; default 1000, --quick: 200)")
    parser.add_argument("--wait-quiet", type=float, default=300,
                        help="wait at most this many seconds for an idle machine before starting (0: do not)")
    parser.add_argument("--quick", action="store_true", help="smoke run: few turns, short ramp, 200 sockets")
    parser.add_argument("--only", default="latency,capacity,sockets",
                        help="comma-separated parts to run: latency, capacity, sockets "
                             "(e.g. --only capacity --capacity-providers openai --levels 100,150)")
    parser.add_argument("--upstream", choices=("fast", "threaded"), default="fast",
                        help="fake provider: fast (benchmarks/fast_upstream.py, one asyncio loop) or threaded "
                             "(bestchat.testing.fake_openai, one thread per stream: the former one, ~5x the CPU)")
    parser.add_argument("--out", default=None, help="results file stem (default: a timestamp)")
    args = parser.parse_args()
    args.providers = [p for p in args.providers.split(",") if p]
    args.capacity_providers = [p for p in args.capacity_providers.split(",") if p]
    levels = args.levels or ("10,50" if args.quick else "10,25,50,100,150,200,250,300")
    args.levels = [int(x) for x in levels.split(",") if x]
    if args.sockets is None:
        args.sockets = 200 if args.quick else 1000
    args.only = [x for x in args.only.split(",") if x]
    unknown = set(args.only) - {"latency", "capacity", "sockets"}
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    args.frame_ms = [None if x == "default" else int(x) for x in args.frame_ms.split(",") if x]
    if args.quick:
        args.turns_slow, args.turns_fast = 1, 3
        args.capacity_window = 4.0
    return args


def prepare_process() -> None:
    """Room for thousands of sockets, and a clean exit (stopping every child) on SIGTERM."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def main() -> None:
    args = parse_args()
    prepare_process()
    started = time.time()
    stamp = args.out or time.strftime("%Y%m%d-%H%M%S")
    stack = Stack(args)
    results: dict[str, Any] = {
        "stamp": stamp, "command": " ".join([".venv/bin/python", "benchmarks/stream_bench.py", *sys.argv[1:]]),
        "machine": f"{CORES} cores, {os.uname().release}, python {sys.version.split()[0]}",
        "config": {k: v for k, v in vars(args).items()}, "git": git_state(), "latency": [], "capacity": [],
        "idle_sockets": None,
    }
    RESULTS.mkdir(exist_ok=True)

    def save() -> None:
        results["total_s"] = time.time() - started
        (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=1))
        (RESULTS / f"{stamp}.md").write_text(markdown(results))

    try:
        if args.wait_quiet:
            results["quiet_check"] = wait_quiet(args.wait_quiet, 15)
            log(f"quiet check: {results['quiet_check']}")
        log(f"temp dir {stack.tmp}; resetting database bench and redis db 9")
        stack.reset_database()
        stack.start_fake()
        stack.start_client()
        latency = "latency" in args.only
        kinds = list(dict.fromkeys((args.providers if latency else [])
                                   + (args.capacity_providers if "capacity" in args.only else [])))
        # The capacity ramp and the idle sockets run with the first STREAM_FRAME_MS value only.
        for index, frame_ms in enumerate(args.frame_ms if latency else args.frame_ms[:1]):
            log(f"starting web + {args.workers} workers (STREAM_FRAME_MS={'default' if frame_ms is None else frame_ms})")
            stack.start_servers(frame_ms)
            account = Account(stack.base)
            for kind in kinds:
                account.provider(kind, stack.fake_url)
            bench = Bench(stack, account, args)
            if latency:
                section = {"frame_ms": frame_ms if frame_ms is not None else config_default("STREAM_FRAME_MS"),
                           "scenarios": []}
                results["latency"].append(section)
                for kind in args.providers:
                    bench.warm_up(kind)
                    section["scenarios"].append(bench.latency(kind, 0.02, args.concurrency, args.turns_slow,
                                                              stagger=True))
                    section["scenarios"].append(bench.latency(kind, 0.02, args.concurrency, 1, stagger=False))
                    section["scenarios"].append(bench.latency(kind, 0.0, args.concurrency, args.turns_fast))
                    save()
            if index == 0:
                for kind in args.capacity_providers if "capacity" in args.only else []:
                    if not latency:
                        bench.warm_up(kind)
                    results["capacity"].append(bench.capacity(kind))
                    save()
                if args.sockets and "sockets" in args.only:
                    results["idle_sockets"] = bench.idle_sockets(args.sockets)
                    save()
            account.http.close()
            stack.stop_servers()
        save()
        log(f"done in {time.time() - started:.0f} s: {RESULTS / stamp}.json / .md")
    finally:
        try:
            save()
        except Exception as error:  # noqa: BLE001
            print(f"could not save results: {error}", file=sys.stderr)
        stack.stop(keep_logs=RESULTS / "logs" / stamp)


if __name__ == "__main__":
    main()
