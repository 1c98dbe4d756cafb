#!/usr/bin/env python
"""Peer benchmark: BestChat's three streaming paths against Open WebUI and the LiteLLM proxy.

One load client, one fake upstream, one run, one table. Everything listens on 127.0.0.1 and every
process this script starts is stopped at exit.

* The fake upstream: ``benchmarks/fast_upstream.py`` (an OpenAI-compatible streaming server on one
  asyncio loop), every answer 200 tokens, 20 ms apart, each ``tokN`` token stamped with its
  emission time.
* The load client: ``benchmarks/peer_load.py``, one process per target: ``httpx`` under gevent
  for the OpenAI-style SSE targets and BestChat's REST SSE path, ``ws_load.py``'s asyncio socket
  for the WebSocket path (the cheapest client of each protocol; its CPU per token is reported).
* The targets, one after the other, each started fresh and stopped after its levels:

  ========================  ============================================================================
  direct                    the client straight to the fake upstream (the baseline; it must pass every
                            level, which shows that the client and the fake are not the bottleneck)
  bestchat-v1               BestChat ``POST /v1/chat/completions`` (1 gunicorn gevent web + 2 Celery
                            gevent workers, PostgreSQL, Redis, native ``openai`` provider)
  bestchat-rest             ``POST /api/v1/conversations/<id>/messages`` then
                            ``GET /api/v1/messages/<id>/stream`` (same stack)
  bestchat-ws               WebSocket ``send`` on a subscribed socket (same stack)
  bestchat-v1-litellm       ``/v1`` through the ``litellm`` provider (same stack)
  open-webui                Open WebUI's OpenAI API pass-through ``POST /openai/chat/completions``, one
                            uvicorn worker, API-key auth, the fake upstream as its OpenAI connection
  litellm-proxy             the LiteLLM proxy, one worker, a model routed to the fake upstream
  ========================  ============================================================================

  The peers run from their own virtualenvs outside the repository (``--peers-dir``, default
  ``/work/peers/<name>``), installed on first use with pip (``benchmarks/peers.py``); a peer
  that cannot be installed or started is skipped with the reason in the table. They run offline:
  telemetry, update checks and model downloads are off (see ``peers.py``).

For every target and level (``--levels``, concurrent streams, each chatting back to back; the
starts spread over one answer's length, then ``--duration`` steady seconds), over the answers
started in the steady window: TTFT, chunk delay (arrival - emission of the newest token in a
read), errors, and every answer's tokens checked: each of the 200 exactly once, in order, with
the expected text (lost / duplicated / reordered / content mismatch). A level passes when TTFT
p95 < 500 ms, chunk delay p95 < 50 ms, no answer failed and no token was lost, duplicated or
reordered. The ramp of a target stops at its first failing level (``direct`` runs them all); the
CPU level (``--cpu-level``, 40) is measured anyway.

Before the ramp, a light-load probe (``--probe-streams``, 4 streams, measured the same way over
twice the steady time, not a pass/fail level) gives the TTFT overhead apart from saturation.

The table: TTFT p50 overhead over direct (at the probe), the highest passing level, the
server CPU per delivered token at the CPU level (CPU time of the target's processes, from
``/proc``: BestChat = web + workers + Redis + PostgreSQL backends; a peer = its process tree),
and the idle memory (RSS sum of the same processes after start and a warm-up answer).

    .venv/bin/python benchmarks/peer_bench.py                       # full run (~25 min)
    .venv/bin/python benchmarks/peer_bench.py --quick               # smoke run (~8 min)
    .venv/bin/python benchmarks/peer_bench.py --targets direct,bestchat-ws --levels 10,40

Results: ``benchmarks/results/peers-<stamp>.json`` and ``.md``.
"""

from __future__ import annotations

import stream_bench as sb  # noqa: I001 - first: it patches the standard library for gevent

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

from gevent.pool import Pool  # noqa: E402

import peers  # noqa: E402
from git_state import git_state  # noqa: E402

HERE = Path(__file__).resolve().parent
TOKENS = sb.TOKENS
DELAY = 0.02
ANSWER_S = TOKENS * DELAY
FAKE_MODEL = f"bench?tokens={TOKENS}&delay={DELAY:g}"
EXPECTED_TEXT = "".join(f"tok{i} " for i in range(TOKENS))
STAMP_RE = re.compile(r"@\d+\.\d+")
TARGETS = ("direct", "bestchat-v1", "bestchat-rest", "bestchat-ws", "bestchat-v1-litellm", "open-webui",
           "litellm-proxy")
log = sb.log


# ---- BestChat's stack and the load client ------------------------------------------------------

class Stack(sb.Stack):
    """``stream_bench``'s stack (fake upstream, web, workers) on the database and Redis db of
    ``--database-url`` / ``--redis-url``."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.env["BESTCHAT_DATABASE_URL"] = args.database_url
        self.env["BESTCHAT_REDIS_URL"] = args.redis_url
        self.database = urlsplit(args.database_url).path.lstrip("/")

    def reset_database(self) -> None:
        import psycopg
        import redis

        admin = urlunsplit(urlsplit(self.args.database_url)._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')
        with psycopg.connect(self.args.database_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
        subprocess.run([str(sb.BIN / "bestchat"), "db", "upgrade"], cwd=sb.REPO, env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        redis.Redis.from_url(self.args.redis_url).flushdb()

    @property
    def redis_pid(self) -> int:
        import redis

        if not hasattr(self, "_redis_pid"):
            self._redis_pid = int(redis.Redis.from_url(self.args.redis_url).info("server")["process_id"])
        return self._redis_pid

    @property
    def pg(self):
        if not hasattr(self, "_pg"):
            import psycopg

            self._pg = psycopg.connect(self.args.database_url, autocommit=True)
            self.pg_pid_exclude.add(self._pg.info.backend_pid)
        return self._pg

    def pg_pids(self) -> list[int]:
        rows = self.pg.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                               "OR backend_type <> 'client backend'", (self.database,)).fetchall()
        return [r[0] for r in rows if r[0] not in self.pg_pid_exclude]

    def server_groups(self) -> dict[str, list[int]]:
        """BestChat's server processes: web, workers, Redis, PostgreSQL."""
        return {k: v for k, v in self.measured().items()
                if k.startswith(("web", "celery", "redis", "postgres"))}

    def start_client(self, engine: str = "gevent") -> None:
        self.client = PeerClient(self.procs, self.env, engine)


class PeerClient(sb.LoadClient):
    """``peer_load.py`` in a child process (``stream_bench.LoadClient``'s protocol)."""

    def __init__(self, procs: sb.Processes, env: dict[str, str], engine: str):
        out = open(procs.tmp / "client.log", "ab")
        self.process = subprocess.Popen([str(sb.BIN / "python"), str(HERE / "peer_load.py"), engine], cwd=HERE, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=out,
                                        start_new_session=True)
        procs.items["client"] = self.process
        self.procs = procs


# ---- targets ------------------------------------------------------------------------------------

class Target:
    """One system under test: started, driven one level at a time, measured, stopped."""

    name = ""
    label = ""
    engine = "gevent"  # the load client's engine (peer_load.py): gevent for HTTP, asyncio for WebSocket

    def __init__(self, bench: PeerBench):
        self.bench = bench
        self.stack = bench.stack
        self.info: dict[str, Any] = {}

    @property
    def client(self) -> PeerClient:
        return self.stack.client

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def groups(self) -> dict[str, list[int]]:
        """The target's server processes by group (their CPU and RSS are the target's)."""
        return {}

    def prepare(self, streams: int) -> None:
        """Per-level setup outside the measured window (conversations, sockets)."""

    def run(self, starts: list[float], end: float | None, turns: int | None, deadline: float) -> dict[str, Any]:
        raise NotImplementedError


class OpenAIStyle(Target):
    """A target answering ``POST <path>`` with an OpenAI-style event stream."""

    base = ""
    path = "/v1/chat/completions"
    model = FAKE_MODEL
    headers: dict[str, str] = {}

    def run(self, starts, end, turns, deadline):
        return self.client.call("sse_run", mode="openai", base=self.base, headers=self.headers, model=self.model,
                                path=self.path, starts=starts, end=end, turns=turns, deadline=deadline)


class Direct(OpenAIStyle):
    name, label = "direct", "direct (load client straight to the fake upstream)"

    def start(self) -> None:
        self.base = f"http://127.0.0.1:{self.stack.fake_port}"


class BestChat(Target):
    """BestChat: 1 gunicorn gevent web process + ``--workers`` Celery gevent workers."""

    path_kind = "v1"  # v1, rest or ws
    provider = "openai"

    def start(self) -> None:
        self.stack.start_servers(None)
        self.account = sb.Account(self.stack.base)
        self.account.provider(self.provider, self.stack.fake_url)
        self.model, _ = sb.model_name(self.provider, DELAY)
        self.conversations: list[str] = []

    def stop(self) -> None:
        if hasattr(self, "account"):
            self.account.http.close()
        self.stack.stop_servers()

    def groups(self) -> dict[str, list[int]]:
        return self.stack.server_groups()

    def prepare(self, streams: int) -> None:
        if self.path_kind == "v1":
            return
        pool = Pool(10)  # a few at a time: the web process's database pool is not under test here
        self.conversations = list(pool.imap_unordered(lambda _: self.account.conversation(), range(streams)))
        if self.path_kind == "ws":
            self.client.open(self.stack.ws_url, self.account.token, self.conversations)

    def run(self, starts, end, turns, deadline):
        auth = {"Authorization": f"Bearer {self.account.token}"}
        if self.path_kind == "ws":
            return self.client.run(self.model, starts, end=end, turns=turns, deadline=deadline)
        if self.path_kind == "rest":
            return self.client.call("sse_run", mode="rest", base=self.stack.base, headers=auth, model=self.model,
                                    conversations=self.conversations, starts=starts, end=end, turns=turns,
                                    deadline=deadline)
        return self.client.call("sse_run", mode="openai", base=self.stack.base, headers=auth, model=self.model,
                                starts=starts, end=end, turns=turns, deadline=deadline)


class BestChatV1(BestChat):
    name, label = "bestchat-v1", "BestChat `/v1`, 1 web + 2 workers, native provider"


class BestChatRest(BestChat):
    name, label, path_kind = "bestchat-rest", "BestChat REST SSE (POST message + GET stream)", "rest"


class BestChatWs(BestChat):
    name, label, path_kind, engine = "bestchat-ws", "BestChat WebSocket", "ws", "asyncio"


class BestChatV1Litellm(BestChat):
    name, label, provider = "bestchat-v1-litellm", "BestChat `/v1` with the litellm provider", "litellm"


class Peer(OpenAIStyle):
    """A peer from ``peers.py``: installed in its own venv, started as one process tree."""

    peer_name = ""

    def start(self) -> None:
        peer = peers.PEERS[self.peer_name](self.bench.args.peers_dir, self.stack.procs, self.stack.fake_url,
                                           self.stack.tmp)
        peer.torch_spec = self.bench.args.torch_spec
        self.info.update(peer.ensure_installed(install=not self.bench.args.no_install))
        peer.start()
        self.peer = peer
        self.base, self.path, self.model, self.headers = peer.base, peer.path, peer.model, peer.headers
        self.info["version"] = peer.version

    def stop(self) -> None:
        if hasattr(self, "peer"):
            self.peer.stop()

    def groups(self) -> dict[str, list[int]]:
        return self.peer.groups()


class OpenWebUI(Peer):
    name, peer_name = "open-webui", "open-webui"
    label = "Open WebUI API pass-through, 1 worker"


class LitellmProxy(Peer):
    name, peer_name = "litellm-proxy", "litellm"
    label = "LiteLLM proxy, 1 worker"


TARGET_CLASSES = {cls.name: cls for cls in (Direct, BestChatV1, BestChatRest, BestChatWs, BestChatV1Litellm,
                                            OpenWebUI, LitellmProxy)}


# ---- measuring ----------------------------------------------------------------------------------

def check_content(turns: list[sb.Turn]) -> int:
    """Answers whose text, as it arrived (stamps removed), is not the 200 expected tokens."""
    bad = 0
    for turn in turns:
        if turn.error or turn.status != "complete":
            continue
        if STAMP_RE.sub("", "".join(delta for _, _, delta in turn.chunks)) != EXPECTED_TEXT:
            bad += 1
    return bad


def rss_mb(groups: dict[str, list[int]]) -> float:
    return round(sum(s[1] for pids in groups.values() for p in pids if (s := sb.proc_sample(p))) / 1024, 1)


def pss_mb(groups: dict[str, list[int]]) -> float:
    """The PSS sum: pages shared between processes (forked workers, PostgreSQL's shared buffers)
    counted once in all, each process its share; the RSS sum counts them once per process."""
    total = 0
    for pids in groups.values():
        for pid in pids:
            try:
                with open(f"/proc/{pid}/smaps_rollup") as handle:
                    total += next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
            except (OSError, StopIteration, ValueError):
                continue
    return round(total / 1024, 1)


class PeerBench:
    def __init__(self, stack: Stack, args: argparse.Namespace):
        self.stack = stack
        self.args = args
        self.direct_ttft: dict[int, float | None] = {}

    def snapshot(self, target: Target) -> dict[str, dict[int, tuple[int, int]]]:
        groups = {f"target: {k}": v for k, v in target.groups().items()}
        for name in ("fake", "client"):
            process = self.stack.procs.items.get(name)
            if process is not None:
                groups[name] = sb.descendants(process.pid)
        out: dict[str, dict[int, tuple[int, int]]] = {"_system": {0: (sb.system_busy_ticks(), 0)}}
        for group, pids in groups.items():
            out[group] = {pid: s for pid in pids if (s := sb.proc_sample(pid)) is not None}
        return out

    def level(self, target: Target, streams: int, duration: float | None = None) -> dict[str, Any]:
        """``streams`` streams chatting back to back: starts spread over one answer, then
        ``--duration`` steady seconds; the criteria over the answers started after the spread."""
        target.prepare(streams)
        t0 = time.time() + 0.5
        end = t0 + ANSWER_S + (duration or self.args.duration)
        starts = [t0 + i * ANSWER_S / streams for i in range(streams)]
        before = self.snapshot(target)
        started = time.time()
        answer = target.run(starts, end, None, end + ANSWER_S + 60)
        elapsed = time.time() - started
        after = self.snapshot(target)
        turns = self.stack.client.fetch()
        steady = [t for t in turns if t.t_send >= t0 + ANSWER_S]
        result = sb.analyse(steady)
        every = sb.analyse(turns)
        every["integrity"]["content_mismatch"] = check_content(turns)
        result["all_turns_integrity"] = every["integrity"]
        result["all_turns_errors"] = every["errors"]
        procs = sb.usage_between(before, after, every["integrity"]["tokens"], elapsed)
        result["processes"] = procs
        server_ms = sum(v["cpu_ms"] for k, v in procs.items() if k.startswith("target: "))
        tokens = every["integrity"]["tokens"]
        result["server_cpu_us_per_token"] = round(server_ms * 1000 / tokens, 1) if tokens and target.groups() else None
        result["client_cpu_us_per_token"] = round(procs["client"]["cpu_ms"] * 1000 / tokens, 1) if tokens else None
        result["fake_cpu_us_per_token"] = round(procs["fake"]["cpu_ms"] * 1000 / tokens, 1) if tokens else None
        if isinstance(target, BestChat) and target.path_kind != "v1":
            result["persistence"] = sb.check_persistence(self.stack, turns)
        integrity = every["integrity"]
        problems = []
        if answer["unfinished"] or answer["errors"]:
            problems.append(f"{answer['unfinished']} streams unfinished, errors {answer['errors'][:2]}")
        if not steady:
            problems.append("no answer started in the steady window")
        if (result["ttft_ms"]["p95"] or 0) >= 500:
            problems.append(f"TTFT p95 {result['ttft_ms']['p95']} ms")
        if result["chunk_delay_ms"]["p95"] is None or result["chunk_delay_ms"]["p95"] >= 50:
            problems.append(f"chunk delay p95 {result['chunk_delay_ms']['p95']} ms")
        if integrity["failed_turns"]:
            problems.append(f"{integrity['failed_turns']} failed answers ({(every['errors'] or ['?'])[0]})")
        bad_tokens = sum(integrity[k] for k in ("lost_tokens", "duplicated_tokens", "reordered_tokens",
                                                "content_mismatch"))
        if bad_tokens:
            problems.append("lost/dup/reordered tokens {lost_tokens}/{duplicated_tokens}/{reordered_tokens}, "
                            "content mismatch {content_mismatch}".format(**integrity))
        result.update(streams=streams, steady_turns=len(steady), turns=len(turns), elapsed_s=round(elapsed, 2),
                      unfinished=answer["unfinished"], client_errors=answer["errors"][:5],
                      passed=not problems, problems=problems)
        if target.name == "direct":
            self.direct_ttft[streams] = result["ttft_ms"]["p50"]
        direct = self.direct_ttft.get(streams)
        result["ttft_overhead_p50_ms"] = (None if direct is None or result["ttft_ms"]["p50"] is None
                                          else round(result["ttft_ms"]["p50"] - direct, 2))
        log(f"{target.name} x{streams}: TTFT p50/p95 {result['ttft_ms']['p50']}/{result['ttft_ms']['p95']} ms, "
            f"chunk delay p95 {result['chunk_delay_ms']['p95']} ms, {len(steady)} steady answers, server "
            f"{result['server_cpu_us_per_token']} µs/token, client {result['client_cpu_us_per_token']} µs/token "
            f"-> {'OK' if not problems else 'FAIL: ' + '; '.join(problems)}")
        return result

    def warm_up(self, target: Target) -> None:
        """Two answers (imports, connection pools, caches), then a quiet moment before the idle RSS."""
        target.prepare(2)
        now = time.time()
        answer = target.run([now, now + 0.1], None, 1, now + 120)
        turns = self.stack.client.fetch()
        failed = [t.error or t.status for t in turns if t.error or t.status != "complete"]
        if answer["unfinished"] or answer["errors"] or failed or len(turns) != 2:
            raise RuntimeError(f"{target.name}: warm-up failed: {answer} {failed[:2]}")

    def target(self, name: str) -> dict[str, Any]:
        target = TARGET_CLASSES[name](self)
        result: dict[str, Any] = {"target": name, "label": target.label, "levels": [], "info": target.info}
        started = time.time()
        try:
            log(f"starting {name}")
            self.stack.start_client(target.engine)  # a fresh client per target: no state carried over
            target.start()
            self.warm_up(target)
            time.sleep(2)
            groups = target.groups()
            result["idle_rss_mb"] = rss_mb(groups) if groups else None
            result["idle_pss_mb"] = pss_mb(groups) if groups else None
            result["idle_rss_by_group_mb"] = {k: rss_mb({k: v}) for k, v in groups.items()}
            result["idle_pss_by_group_mb"] = {k: pss_mb({k: v}) for k, v in groups.items()}
            if self.args.probe_streams:
                # the TTFT overhead at a light load, apart from the ramp (not a pass/fail level)
                result["probe"] = {**self.level(target, self.args.probe_streams, 2 * self.args.duration),
                                   "probe": True}
            best = failed = None
            for streams in self.args.levels:
                level = self.level(target, streams)
                result["levels"].append(level)
                if level["passed"]:
                    best = streams
                else:
                    failed = streams
                    if name != "direct":
                        break
            if self.args.cpu_level not in [lv["streams"] for lv in result["levels"]]:
                result["levels"].append(self.level(target, self.args.cpu_level))
            result["highest_passing"] = best
            result["first_failing"] = failed
        except peers.Skipped as skipped:
            result["skipped"] = str(skipped)
            log(f"{name} skipped: {skipped}")
        except Exception as error:  # noqa: BLE001 - one target's failure is reported, the others run
            result["error"] = f"{type(error).__name__}: {error}"[:1000]
            log(f"{name} failed: {result['error']}")
        finally:
            target.stop()
            self.stack.procs.stop("client")
        result["total_s"] = round(time.time() - started, 1)
        return result


# ---- report -------------------------------------------------------------------------------------

def summary_row(result: dict[str, Any], cpu_level: int) -> dict[str, Any]:
    levels = result.get("levels") or []
    first = result.get("probe") or (min(levels, key=lambda lv: lv["streams"]) if levels else None)
    at_cpu = next((lv for lv in levels if lv["streams"] == cpu_level), None)
    return {
        "target": result["target"], "label": result["label"],
        "version": result.get("info", {}).get("version"),
        "status": result.get("skipped") and f"skipped: {result['skipped']}" or result.get("error") or "ok",
        "ttft_p50_ms": first and first["ttft_ms"]["p50"],
        "ttft_overhead_p50_ms": first and first["ttft_overhead_p50_ms"],
        "at_streams": first and first["streams"],
        "highest_passing": result.get("highest_passing"),
        "first_failing": result.get("first_failing"),
        "first_failing_why": next((lv["problems"] for lv in levels if not lv["passed"]), None),
        "cpu_us_per_token": at_cpu and at_cpu["server_cpu_us_per_token"],
        "idle_rss_mb": result.get("idle_rss_mb"),
        "idle_pss_mb": result.get("idle_pss_mb"),
        "bad_tokens": sum(lv["all_turns_integrity"][k] for lv in levels
                          for k in ("lost_tokens", "duplicated_tokens", "reordered_tokens", "content_mismatch")),
    }


def markdown(results: dict[str, Any]) -> str:
    cpu_level = results["config"]["cpu_level"]
    lines = [f"# Peer benchmark run {results['stamp']}", "",
             f"Machine: {results['machine']}. Command: `{results['command']}`. Total {results['total_s']:.0f} s. "
             f"Commit {(results.get('git') or {}).get('commit', '?')[:10]}. Quiet check: {results.get('quiet_check')}.",
             "", f"Levels {results['config']['levels']} concurrent streams of {TOKENS} tokens 20 ms apart, "
             f"{results['config']['duration']} s steady each. SLO: TTFT p95 < 500 ms, chunk delay p95 < 50 ms, no "
             "failed answer, 0 lost/duplicated/reordered tokens.", "",
             f"| target | TTFT p50 (overhead over direct) | highest passing concurrency | server CPU per token "
             f"at {cpu_level} streams | idle memory: RSS sum (PSS sum) | lost/dup/reord tokens |",
             "|---|---|---|---|---|---|"]
    for row in results["summary"]:
        name = row["label"] + (f" {row['version']}" if row["version"] else "")
        if row["status"] != "ok":
            lines.append(f"| {name} | {row['status']} | | | | |")
            continue
        overhead = "—" if row["target"] == "direct" else f"+{row['ttft_overhead_p50_ms']} ms"
        passing = row["highest_passing"] if row["highest_passing"] is not None else "none"
        if row["first_failing"] is not None:
            passing = f"{passing} ({row['first_failing']} fails: {'; '.join(row['first_failing_why'] or [])})"
        else:
            passing = f"{passing} (every level tried)"
        cpu = "—" if row["cpu_us_per_token"] is None else f"{row['cpu_us_per_token']:.0f} µs"
        memory = "—" if row["idle_rss_mb"] is None else f"{row['idle_rss_mb']:.0f} MB ({row['idle_pss_mb']:.0f} MB)"
        lines.append(f"| {name} | {row['ttft_p50_ms']} ms ({overhead}, at {row['at_streams']}) | {passing} | "
                     f"{cpu} | {memory} | {row['bad_tokens']} |")
    direct = next((row for row in results["summary"] if row["target"] == "direct"), None)
    if direct and direct["first_failing"] is not None:
        lines += ["", f"**Direct failed at {direct['first_failing']} streams**: there the load client or the "
                  "machine is the limit, so no target's result at or above that level says anything."]
    lines += ["", "## Levels", "",
              "| target | streams | steady answers | TTFT p50/p95/p99 ms | chunk delay p50/p95/p99 ms | failed | "
              "server µs CPU/token | client / fake µs CPU/token | machine busy % | OK |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for result in results["targets"]:
        for lv in ([result["probe"]] if result.get("probe") else []) + result.get("levels", []):
            lines.append(
                f"| {result['target']} | {lv['streams']}{' (probe)' if lv.get('probe') else ''} | {lv['steady_turns']} | {sb._tri(lv['ttft_ms'])} | "
                f"{sb._tri(lv['chunk_delay_ms'])} | {lv['all_turns_integrity']['failed_turns']} | "
                f"{lv['server_cpu_us_per_token']} | {lv['client_cpu_us_per_token']} / {lv['fake_cpu_us_per_token']} | "
                f"{lv['processes']['_machine']['busy_pct_of_all_cores']} | {'yes' if lv['passed'] else 'no'} |")
    lines += ["", "## Idle memory by process group, MB: PSS (RSS)", "", "| target | groups |", "|---|---|"]
    for result in results["targets"]:
        pss, rss = result.get("idle_pss_by_group_mb") or {}, result.get("idle_rss_by_group_mb") or {}
        if pss:
            lines.append(f"| {result['target']} | " + ", ".join(f"{k} {v:.0f} ({rss.get(k, 0):.0f})" for k, v in pss.items())
                         + " |")
    return "\n".join(lines) + "\n"


# ---- main ---------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of: {', '.join(TARGETS)}")
    parser.add_argument("--levels", default=None, help="concurrent streams per level (default "
                                                      "10,20,40,60,80,100,120,150; --quick: 10,40)")
    parser.add_argument("--duration", type=float, default=None, help="steady seconds per level (default 10; --quick: 4)")
    parser.add_argument("--cpu-level", type=int, default=40, help="the level of the CPU-per-token column")
    parser.add_argument("--probe-streams", type=int, default=4,
                        help="streams of the light-load level the TTFT overhead is taken from (0: the lowest level)")
    parser.add_argument("--quick", action="store_true", help="smoke run: levels 10,40, 4 s steady each")
    parser.add_argument("--peers-dir", type=Path, default=Path("/work/peers"),
                        help="where the peers' virtualenvs are (created there: <dir>/<peer>)")
    parser.add_argument("--no-install", action="store_true", help="skip a peer that is not installed yet")
    parser.add_argument("--torch-spec", default=peers.TORCH_SPEC,
                        help="what Open WebUI's venv gets as torch before Open WebUI: a CPU build (a plain "
                             "torch requirement may pull several GB of CUDA wheels), e.g. a wheel file or "
                             "'torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu'")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1/bench",
                        help="BestChat's database (its schema is dropped and migrated)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="BestChat's Redis db (flushed)")
    parser.add_argument("--workers", type=int, default=2, help="BestChat's Celery gevent workers")
    parser.add_argument("--wait-quiet", type=float, default=300,
                        help="wait at most this many seconds for an idle machine before starting (0: do not)")
    parser.add_argument("--out", default=None, help="results file stem (default: peers-<timestamp>)")
    args = parser.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"--targets: unknown {', '.join(sorted(unknown))}")
    if "direct" not in args.targets:
        args.targets.insert(0, "direct")  # every overhead is over direct, measured in the same run
    args.levels = [int(x) for x in (args.levels or ("10,40" if args.quick else "10,20,40,60,80,100,120,150")).split(",") if x]
    if args.duration is None:
        args.duration = 4.0 if args.quick else 10.0
    # what stream_bench.Stack reads
    args.set, args.web_workers, args.upstream = [], 1, "fast"
    return args


def main() -> None:
    args = parse_args()
    sb.prepare_process()
    started = time.time()
    stamp = args.out or time.strftime("peers-%Y%m%d-%H%M%S")
    results: dict[str, Any] = {
        "stamp": stamp, "command": " ".join([".venv/bin/python", "benchmarks/peer_bench.py", *sys.argv[1:]]),
        "machine": f"{sb.CORES} cores, {os.uname().release}, python {sys.version.split()[0]}",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "git": git_state(),
        "targets": [], "summary": [],
    }
    sb.RESULTS.mkdir(exist_ok=True)

    def save() -> None:
        results["total_s"] = time.time() - started
        results["summary"] = [summary_row(r, args.cpu_level) for r in results["targets"]]
        (sb.RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=1))
        (sb.RESULTS / f"{stamp}.md").write_text(markdown(results))

    stack = Stack(args)
    try:
        if args.wait_quiet:
            results["quiet_check"] = sb.wait_quiet(args.wait_quiet, 15)
            log(f"quiet check: {results['quiet_check']}")
        if any(t.startswith("bestchat") for t in args.targets):
            log(f"temp dir {stack.tmp}; resetting database {stack.database} and {args.redis_url}")
            stack.reset_database()
        stack.start_fake()
        bench = PeerBench(stack, args)
        for name in args.targets:
            results["targets"].append(bench.target(name))
            save()
        save()
        log(f"done in {time.time() - started:.0f} s: {sb.RESULTS / stamp}.json / .md")
        print(markdown(results))
    finally:
        try:
            save()
        except Exception as error:  # noqa: BLE001
            print(f"could not save results: {error}", file=sys.stderr)
        stack.stop(keep_logs=sb.RESULTS / "logs" / stamp)


if __name__ == "__main__":
    main()
