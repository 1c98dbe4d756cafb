#!/usr/bin/env python
"""The one load client of ``peer_bench.py``: one process per target, one engine, every target.

It drives OpenAI-style streaming chat completions (the fake upstream itself, BestChat's ``/v1``,
Open WebUI's OpenAI pass-through, the LiteLLM proxy) and BestChat's REST SSE path (``POST
/api/v1/conversations/<id>/messages``, then ``GET /api/v1/messages/<id>/stream``) with
``httpx.Client``, one greenlet per stream (``python peer_load.py gevent``: gevent and httpx's
sync path cost about half the CPU per event of ``httpx.AsyncClient`` on asyncio), and BestChat's
WebSocket path with ``ws_load.py``'s lean socket on one asyncio loop (``python peer_load.py
asyncio``: the code ``stream_bench.py`` uses; ``websocket-client`` under gevent costs several
times more per frame). Every network read is stamped with ``time.time()`` when it arrives (the
clock of the fake upstream's ``tokN@<emission time>`` stamps); the turns come back with the
fields of ``stream_bench.Turn``: the chunks as ``(arrival, seq, delta)``, ``seq`` being
BestChat's chunk seq on the REST and WebSocket paths and the 1-based index of the content delta
in an OpenAI-style stream.

Driven like ``ws_load.py``: one JSON object per line on stdin, one JSON answer per line:

* asyncio engine: ``ws_load.py``'s commands ``open`` / ``run`` / ``fetch`` / ``close``.
* gevent engine: ``{"cmd": "sse_run", "mode": "openai"|"rest", "base", "headers", "model",
  "starts", "end", "turns", "deadline", "conversations" (rest: one per stream), "path" (openai:
  the chat completions path, default ``/v1/chat/completions``)}``: stream ``i`` starts at
  ``starts[i]`` and chats back to back until it has done ``turns`` answers or, with ``end``,
  until an answer ends after ``end``, as ``run`` does. Answer: ``{"turns", "unfinished",
  "errors"}``; the turns stay here until ``fetch``.
* both: ``{"cmd": "usage"}`` (this process's CPU seconds, ``{"cpu_s"}``), ``{"cmd": "exit"}``.
"""

from __future__ import annotations

import sys

ENGINE = sys.argv[1] if len(sys.argv) > 1 else "gevent"
if ENGINE == "gevent":
    from gevent import monkey

    monkey.patch_all()

import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from ws_load import Turn, serve_commands  # noqa: E402

_time = time.time
_loads = json.loads


def _events(buffer: bytearray) -> list[bytes]:
    """The complete SSE events at the start of ``buffer`` (removed from it)."""
    out = []
    start = 0
    while True:
        end = buffer.find(b"\n\n", start)
        if end < 0:
            break
        out.append(bytes(buffer[start:end]))
        start = end + 2
    if start:
        del buffer[:start]
    return out


def _fields(event: bytes) -> tuple[str | None, bytes | None]:
    """(event name, data) of one SSE event (one ``data:`` line, as every target writes)."""
    name = data = None
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].lstrip(b" ")
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode()
    return name, data


class SseTurn:
    """Reads one answer's event stream into a :class:`ws_load.Turn`."""

    def __init__(self, turn: Turn, mode: str) -> None:
        self.turn = turn
        self.mode = mode
        self.seq = 0
        self.done = False

    def feed(self, now: float, event: bytes) -> None:
        name, data = _fields(event)
        if data is None:
            return  # a comment (keep-alive) or a retry: line
        turn = self.turn
        if self.mode == "openai":
            if data == b"[DONE]":
                turn.status = turn.status or "complete"
                turn.last_seq = self.seq
                self.done = True
                return
            chunk = _loads(data)
            if "error" in chunk:
                turn.error = json.dumps(chunk["error"])[:300]
                self.done = True
                return
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    self.seq += 1
                    if turn.t_first is None:
                        turn.t_first = now
                    turn.chunks.append((now, self.seq, content))
            return
        frame = _loads(data)
        kind = name or frame.get("type")
        if kind == "chunk":
            if turn.t_first is None:
                turn.t_first = now
            turn.chunks.append((now, frame["seq"], frame["delta"]))
        elif kind in ("message.completed", "message.failed"):
            turn.status = frame.get("status") or ("complete" if kind == "message.completed" else "failed")
            turn.last_seq = frame.get("last_seq")
            if kind == "message.failed":
                turn.error = json.dumps(frame.get("error"))[:300]
            self.done = True
        elif kind == "error":
            turn.error = f"{frame.get('code')}: {frame.get('message')}"
            self.done = True


class SseClient:
    """The SSE targets: one greenlet per stream, ``httpx.Client`` (its sync path under gevent
    costs half the CPU per event of ``httpx.AsyncClient`` on asyncio)."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []

    def sse_run(self, mode: str, base: str, headers: dict[str, str], model: str, starts: list[float],
                end: float | None, deadline: float, turns: int | None = None,
                conversations: list[str] | None = None, path: str = "/v1/chat/completions") -> dict[str, Any]:
        import gevent

        self.turns = []
        out = self.turns
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=len(starts) + 10)
        # No compression: the bytes are read as they arrive, one read per network segment.
        client = httpx.Client(base_url=base, headers={**headers, "Accept-Encoding": "identity"}, limits=limits,
                              timeout=httpx.Timeout(120, connect=30))

        def one_turn(index: int, count: int) -> Turn:
            turn = Turn(_time())
            reader = SseTurn(turn, mode)
            try:
                if mode == "rest":
                    conversation = conversations[index]  # type: ignore[index]
                    r = client.post(f"/api/v1/conversations/{conversation}/messages",
                                    json={"content": f"benchmark question {count}", "model": model})
                    if r.status_code != 202:
                        turn.error = f"POST messages: {r.status_code} {r.text[:200]}"
                        return turn
                    turn.message_id = r.json()["assistant_message"]["id"]
                    turn.t_created = _time()
                    request = client.stream("GET", f"/api/v1/messages/{turn.message_id}/stream")
                else:
                    body = {"model": model, "stream": True,
                            "messages": [{"role": "user", "content": f"benchmark question {count}"}]}
                    request = client.stream("POST", path, json=body)
                with request as response:
                    if response.status_code != 200:
                        turn.error = f"HTTP {response.status_code}: {response.read()[:200].decode(errors='replace')}"
                        return turn
                    buffer = bytearray()
                    for data in response.iter_raw():
                        now = _time()
                        buffer += data.replace(b"\r", b"") if b"\r" in data else data  # CRLF framing
                        for event in _events(buffer):
                            reader.feed(now, event)
                        if reader.done:
                            break
                if not reader.done and turn.error is None:
                    turn.error = "the stream ended before its last event"
            except Exception as error:  # noqa: BLE001 - a failed turn, counted
                turn.error = f"{type(error).__name__}: {error}"[:300]
            finally:
                turn.t_end = _time()
            return turn

        def chat(index: int, start: float) -> None:
            delay = start - _time()
            if delay > 0:
                gevent.sleep(delay)
            done = 0
            while (turns is None or done < turns) and (end is None or _time() < end):
                done += 1
                out.append(one_turn(index, done))

        greenlets = [gevent.spawn(chat, i, t) for i, t in enumerate(starts)]
        gc.disable()  # as in ws_load: the turns are many tracked objects, collected after the run
        try:
            gevent.joinall(greenlets, timeout=max(0.0, deadline - _time()))
        finally:
            gc.enable()
        pending = [g for g in greenlets if not g.ready()]
        gevent.killall(pending, block=True, timeout=10)
        errors = [repr(g.exception)[:200] for g in greenlets if g.ready() and g.exception is not None]
        client.close()
        return {"turns": len(out), "unfinished": len(pending), "errors": errors[:5]}

    def fetch(self) -> dict[str, Any]:
        turns, self.turns = self.turns, []
        return {"turns": [t.as_json() for t in turns]}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def answer(client: Any, command: dict[str, Any]) -> Any:
    """The answer of one command of the gevent engine."""
    name = command.pop("cmd")
    if name == "usage":
        return {"cpu_s": cpu_seconds()}
    if name in ("open", "run", "sse_run", "fetch", "close"):
        method = getattr(client, name, None)
        if method is None:
            return {"error": f"{name!r} is not a command of the {ENGINE} engine"}
        return method(**command)
    return {"error": f"unknown command {name!r}"}


def serve_gevent() -> None:
    """One JSON command per stdin line, one JSON answer per stdout line (between commands
    nothing runs, so the blocking read of stdin holds nothing up)."""
    client = SseClient()
    gc.collect()
    gc.freeze()
    for line in sys.stdin.buffer:
        command = json.loads(line)
        if command.get("cmd") == "exit":
            break
        try:
            result = answer(client, command)
        except Exception as error:  # noqa: BLE001 - the driver reports it
            result = {"error": repr(error)[:500]}
        sys.stdout.buffer.write(json.dumps(result).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    if ENGINE == "gevent":
        serve_gevent()
    else:
        # ws_load.py's commands, and this client's CPU
        asyncio.run(serve_commands({"usage": lambda: {"cpu_s": cpu_seconds()}}))
