#!/usr/bin/env python
"""The one load client of ``peer_bench.py``: one process, one asyncio loop, every target.

It drives OpenAI-style streaming chat completions (the fake upstream itself, BestChat's ``/v1``,
Open WebUI's OpenAI pass-through, the LiteLLM proxy) and BestChat's REST SSE path (``POST
/api/v1/conversations/<id>/messages``, then ``GET /api/v1/messages/<id>/stream``) with
``httpx.AsyncClient``, and BestChat's WebSocket path with ``ws_load.py``'s lean socket (the same
code ``stream_bench.py`` uses). Every network read is stamped with ``time.time()`` when it
arrives (the clock of the fake upstream's ``tokN@<emission time>`` stamps); the turns come back
with the fields of ``stream_bench.Turn``: the chunks as ``(arrival, seq, delta)``, ``seq`` being
BestChat's chunk seq on the REST and WebSocket paths and the 1-based index of the content delta
in an OpenAI-style stream.

Driven like ``ws_load.py``: one JSON object per line on stdin, one JSON answer per line:

* ``open`` / ``run`` / ``fetch`` / ``close`` / ``exit``: ``ws_load.py``'s WebSocket commands.
* ``{"cmd": "sse_run", "mode": "openai"|"rest", "base", "headers", "model", "starts",
  "end", "turns", "deadline", "conversations" (rest: one per stream), "path" (openai: the
  chat completions path, default ``/v1/chat/completions``)}``: stream ``i`` starts at
  ``starts[i]`` and chats back to back, as ``run`` does. Answer: ``{"turns", "unfinished",
  "errors"}``; the turns stay here until ``fetch``.
* ``{"cmd": "usage"}``: this process's CPU seconds so far (``{"cpu_s"}``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time
from typing import Any

import httpx

from ws_load import LoadClient as WsLoadClient
from ws_load import Turn

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


class LoadClient(WsLoadClient):
    """``ws_load.LoadClient`` plus the SSE targets."""

    async def sse_run(self, mode: str, base: str, headers: dict[str, str], model: str, starts: list[float],
                      end: float | None, deadline: float, turns: int | None = None,
                      conversations: list[str] | None = None, path: str = "/v1/chat/completions",
                      close: bool = True) -> dict[str, Any]:
        self.turns = []
        out = self.turns
        errors: list[str] = []
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=len(starts) + 10)
        # No compression: the bytes are read as they arrive, one read per network segment.
        client = httpx.AsyncClient(base_url=base, headers={**headers, "Accept-Encoding": "identity"},
                                   limits=limits, timeout=httpx.Timeout(120, connect=30))

        async def one_turn(index: int, count: int) -> Turn:
            turn = Turn(_time())
            reader = SseTurn(turn, mode)
            try:
                if mode == "rest":
                    conversation = conversations[index]  # type: ignore[index]
                    r = await client.post(f"/api/v1/conversations/{conversation}/messages",
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
                async with request as response:
                    if response.status_code != 200:
                        text = (await response.aread())[:200].decode(errors="replace")
                        turn.error = f"HTTP {response.status_code}: {text}"
                        return turn
                    buffer = bytearray()
                    async for data in response.aiter_raw():
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

        async def chat(index: int, start: float) -> None:
            delay = start - _time()
            if delay > 0:
                await asyncio.sleep(delay)
            done = 0
            while (turns is None or done < turns) and (end is None or _time() < end):
                done += 1
                out.append(await one_turn(index, done))

        tasks = [asyncio.ensure_future(chat(i, t)) for i, t in enumerate(starts)]
        gc.disable()  # as in ws_load: the turns are many tracked objects, collected after the run
        try:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - _time()))
        finally:
            gc.enable()
        for task in pending:
            task.cancel()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                errors.append(repr(task.exception())[:200])
        if close:
            await client.aclose()
        return {"turns": len(out), "unfinished": len(pending), "errors": errors[:5]}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve_commands() -> None:
    """One JSON command per stdin line, one JSON answer per stdout line."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    client = LoadClient()
    gc.collect()
    gc.freeze()
    while True:
        line = await reader.readline()
        if not line:
            break
        command = json.loads(line)
        name = command.pop("cmd")
        try:
            if name == "open":
                answer = await client.open(**command)
            elif name == "run":
                answer = await client.run(**command)
            elif name == "sse_run":
                answer = await client.sse_run(**command)
            elif name == "fetch":
                answer = client.fetch()
            elif name == "usage":
                answer = {"cpu_s": cpu_seconds()}
            elif name == "close":
                answer = client.close()
            elif name == "exit":
                client.close()
                await asyncio.sleep(0.1)
                break
            else:
                answer = {"error": f"unknown command {name!r}"}
        except Exception as error:  # noqa: BLE001 - the driver reports it
            answer = {"error": repr(error)[:500]}
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    asyncio.run(serve_commands())
