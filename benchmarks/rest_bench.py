#!/usr/bin/env python
"""REST benchmark: authenticated reads against ONE web process, on SQLite and PostgreSQL.

One script, bounded, everything on 127.0.0.1, every process it starts is killed on exit.

For each database it starts one web process exactly as ``bestchat serve`` does (``gunicorn -k
gevent -w 1 --worker-connections 2000``, the redacting access log written to a file):

* ``sqlite``: embedded mode (no Redis, jobs in process), a fresh SQLite file;
* ``postgresql``: production mode, PostgreSQL database ``--pg-db`` on a fresh schema and Redis
  db ``--redis-db`` flushed (migrated with ``bestchat db upgrade`` in both cases).

It registers a user, makes an API token and 20 conversations over REST, then drives each
path (``/healthz`` as the ceiling, ``GET /api/v1/me``, ``GET /api/v1/conversations``) with
ApacheBench (``ab -k``: HTTP keep-alive, one C process, cheap enough not to be the bottleneck:
``/healthz`` shows what it can reach) at each concurrency level, and reports requests/s,
latency p50/p90/p99/max, failed requests and the web worker's CPU milliseconds per request
(``/proc``: less sensitive to a shared machine than latency).

    .venv/bin/python benchmarks/rest_bench.py                       # both databases, 10 and 100 clients
    .venv/bin/python benchmarks/rest_bench.py --db postgresql --levels 100 --seconds 10
    .venv/bin/python benchmarks/rest_bench.py --paths /api/v1/me --out benchmarks/results/rest-x.json
    # A/B: another checkout's web process up at the same time, runs alternating, medians
    .venv/bin/python benchmarks/rest_bench.py --baseline /tmp/base --rounds 3 --seconds 4

With ``--baseline DIR`` (a checkout of the code to compare with: ``git worktree add DIR main``
or ``git archive``; it needs ``.venv`` and ``bestchat/admin`` as this one has them) both web
processes run at once (the baseline's on database ``<pg-db>_baseline``, SQLite in its own
file) and every run alternates between them, so that the machine's other work falls on both
alike; each row is then the median of ``--rounds`` runs.

``ab`` comes from Debian's ``apache2-utils`` (``apt-get install apache2-utils``).
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bestchat.testing.processes import free_port, stop_group, wait_for  # noqa: E402

BIN = REPO / ".venv" / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench horse battery staple"
PATHS = ("/healthz", "/api/v1/me", "/api/v1/conversations")


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def worker_pid(master: int) -> int:
    """The gunicorn worker (the master's only child)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == master:
                        return int(entry)
            except OSError:
                continue
    raise RuntimeError("no gunicorn worker")


class Server:
    """One web process on one database, with a user, a token and 20 conversations."""

    def __init__(self, db: str, args: argparse.Namespace, tmp: Path, tree: Path = REPO, name: str = "this"):
        from cryptography.fernet import Fernet

        self.db, self.args, self.tmp, self.tree, self.name = db, args, tmp, tree, name
        self.pg_db = args.pg_db if name == "this" else f"{args.pg_db}_{name}"
        plugins = ":".join(str(tree / "plugins" / plugin) for plugin in ("openai", "demo", "litellm", "tools", "context"))
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BESTCHAT_")},
            "BESTCHAT_SECRET_KEY": "bench-" + secrets.token_hex(32),
            "BESTCHAT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "BESTCHAT_INSTANCE_PATH": str(tmp / f"instance-{db}-{name}"),
            "PYTHONPATH": f"{tree}:{plugins}",
            "BESTCHAT_RATELIMIT_REGISTER_PER_IP": "1000/60",
            "BESTCHAT_RATELIMIT_LOGIN_PER_IP": "1000/60",
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            **{f"BESTCHAT_{s.partition('=')[0]}": s.partition("=")[2] for s in args.set},
        }
        if db == "postgresql":
            self.env.update({"BESTCHAT_ENV_NAME": "production",
                             "BESTCHAT_DATABASE_URL": f"{args.pg_url}/{self.pg_db}",
                             "BESTCHAT_REDIS_URL": f"{args.redis_url}/{args.redis_db}"})
        else:
            self.env["BESTCHAT_DATABASE_URL"] = f"sqlite:///{tmp / f'bench-{name}.db'}"
        self.process: subprocess.Popen | None = None
        atexit.register(self.stop)

    def reset(self) -> None:
        if self.db == "postgresql":
            import psycopg
            import redis

            with psycopg.connect(f"{self.args.pg_url}/postgres", autocommit=True) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.pg_db,)).fetchone():
                    conn.execute(f'CREATE DATABASE "{self.pg_db}"')
            with psycopg.connect(f"{self.args.pg_url}/{self.pg_db}", autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
                conn.execute("CREATE SCHEMA public")
            if self.name == "this":  # (the baseline starts second: its reset keeps this one's keys)
                redis.Redis.from_url(f"{self.args.redis_url}/{self.args.redis_db}").flushdb()
        subprocess.run([str(self.tree / ".venv" / "bin" / "bestchat"), "db", "upgrade"], cwd=self.tree, env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        self.reset()
        out = open(self.tmp / f"web-{self.db}-{self.name}.log", "ab")
        # The flags of `bestchat serve` (its access log to a file instead of stdout).
        argv = [str(self.tree / ".venv" / "bin" / "gunicorn"), "--worker-class", "gevent", "--workers", "1",
                "--bind", f"127.0.0.1:{self.port}", "--worker-connections", "2000",
                "--graceful-timeout", "10", "--access-logfile", str(self.tmp / f"access-{self.db}-{self.name}.log"),
                "--logger-class", "bestchat.accesslog.RedactingLogger", "wsgi:app"]
        self.process = subprocess.Popen(argv, cwd=self.tree, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for(lambda: httpx.get(f"{self.base}/healthz").status_code == 200, 60, "web process")
        self.worker = worker_pid(self.process.pid)
        self.token = self._seed()

    def _seed(self) -> str:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            email = f"bench-{secrets.token_hex(4)}@example.com"
            assert http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
            login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            csrf = login.json()["csrf_token"]
            token = http.post("/api/v1/tokens", json={"name": "bench"}, headers={"X-CSRF-Token": csrf}).json()["token"]
        with httpx.Client(base_url=self.base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            for index in range(20):
                response = http.post("/api/v1/conversations", json={"title": f"conversation {index}"})
                assert response.status_code == 201, response.text
            listed = http.get("/api/v1/conversations").json()
        rows = listed.get("conversations", listed.get("data", listed)) if isinstance(listed, dict) else listed
        log(f"{self.db} ({self.name}): seeded 20 conversations (listing has {len(rows)})")
        return token

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, grace=5)
            self.process = None


_RPS = re.compile(r"Requests per second:\s+([\d.]+)")
_COMPLETE = re.compile(r"Complete requests:\s+(\d+)")
_FAILED = re.compile(r"Failed requests:\s+(\d+)")
_NON2XX = re.compile(r"Non-2xx responses:\s+(\d+)")


def run_ab(server: Server, path: str, concurrency: int, seconds: int, tmp: Path) -> dict[str, Any]:
    """One ``ab -k`` run; returns its numbers and the worker's CPU per request."""
    percentiles = tmp / "ab.csv"
    # (ab reads -t as whole seconds: 0 would mean no time limit)
    argv = ["ab", "-k", "-q", "-c", str(concurrency), "-t", str(max(1, round(seconds))), "-n", "10000000",
            "-s", "60", "-e", str(percentiles)]
    if path != "/healthz":
        argv += ["-H", f"Authorization: Bearer {server.token}"]
    argv.append(server.base + path)
    cpu_before = cpu_seconds(server.worker)
    output = subprocess.run(argv, capture_output=True, text=True, check=False)
    cpu = cpu_seconds(server.worker) - cpu_before
    text = output.stdout
    if output.returncode != 0 or not _COMPLETE.search(text):
        raise RuntimeError(f"ab failed: {output.stderr.strip() or text[-500:]}")
    complete = int(_COMPLETE.search(text).group(1))
    at: dict[int, float] = {}
    with open(percentiles) as handle:
        for row in csv.reader(handle):
            if row and row[0].isdigit():
                at[int(row[0])] = float(row[1])
    non2xx = _NON2XX.search(text)
    return {
        "path": path, "clients": concurrency, "seconds": seconds, "requests": complete,
        "rps": float(_RPS.search(text).group(1)),
        "p50_ms": at.get(50), "p90_ms": at.get(90), "p99_ms": at.get(99), "max_ms": at.get(100),
        "failed": int(_FAILED.search(text).group(1)), "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "cpu_ms_per_request": round(cpu * 1000 / complete, 3) if complete else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--levels", default="10,100", help="concurrent keep-alive clients, comma-separated")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each path's runs (0: none)")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--baseline", help="a checkout to compare with, its runs alternating with this one's")
    parser.add_argument("--rounds", type=int, default=1, help="runs per path and level (each row: their medians)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--pg-db", default="bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a server setting for this run, passed as BESTCHAT_NAME (repeatable)")
    parser.add_argument("--out", help="write the results (every run) as JSON here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers (atexit) on a kill too
    if shutil.which("ab") is None:
        sys.exit("rest_bench.py needs ApacheBench: apt-get install apache2-utils")
    levels = [int(level) for level in args.levels.split(",")]
    paths = [path for path in args.paths.split(",") if path]
    trees = [("this", REPO)] + ([("baseline", Path(args.baseline).resolve())] if args.baseline else [])
    tmp = Path(tempfile.mkdtemp(prefix="bestchat-rest-"))
    results: list[dict[str, Any]] = []
    for db in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
        servers = [Server(db, args, tmp, tree, name) for name, tree in trees]
        try:
            for server in servers:
                server.start()
            for path in paths:
                for server in servers if args.warmup else ():
                    run_ab(server, path, max(levels), args.warmup, tmp)
                for level in levels:
                    runs: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
                    for round_ in range(args.rounds):
                        for server in servers if round_ % 2 == 0 else servers[::-1]:
                            result = {"db": db, "tree": server.name, "round": round_,
                                      **run_ab(server, path, level, args.seconds, tmp)}
                            results.append(result)
                            runs[server.name].append(result)
                    for name, done in runs.items():
                        _report(db, name if len(servers) > 1 else "", path, level, done)
        finally:
            for server in servers:
                server.stop()
    if args.out:
        Path(args.out).write_text(json.dumps({"stamp": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
                                              "argv": sys.argv[1:], "results": results}, indent=2) + "\n")
        log(f"wrote {args.out}")
    shutil.rmtree(tmp, ignore_errors=True)


def _report(db: str, tree: str, path: str, level: int, runs: list[dict[str, Any]]) -> None:
    """One line: the medians of ``runs``."""
    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    log(f"{db:10} {tree:8} {path:24} c={level:<4} {median('rps'):8.1f} req/s  p50 {median('p50_ms'):7.1f} "
        f"p90 {median('p90_ms'):7.1f} p99 {median('p99_ms'):7.1f} max {median('max_ms'):7.1f} ms  "
        f"cpu {median('cpu_ms_per_request'):.3f} ms/req  failed {sum(r['failed'] for r in runs)} "
        f"non-2xx {sum(r['non_2xx'] for r in runs)}" + (f"  (medians of {len(runs)})" if len(runs) > 1 else ""))


if __name__ == "__main__":
    main()
