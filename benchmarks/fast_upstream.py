#!/usr/bin/env python
"""A lean fake OpenAI upstream for ``stream_bench.py``: one process, one thread, one event loop.

``bestchat.testing.fake_openai`` (a ``ThreadingHTTPServer``, one thread per stream sleeping
between tokens) costs ~0.15 ms of CPU per streamed token, which at the benchmark's target load
(150 streams x 50 tokens/s) would take most of a core away from the server under test. This
server answers the same requests with the same bytes for a fraction of that:

* asyncio protocols (no streams, no per-connection task), HTTP/1.1 keep-alive, requests with a
  ``Content-Length`` or chunked body (and ``Expect: 100-continue``);
* ``POST /v1/chat/completions``: the script is picked by the model name exactly as in the
  shared fake (``bench?tokens=200&delay=0.02``, parsed by its :class:`Script`). With
  ``"stream": true`` the answer is ``text/event-stream`` in chunked transfer encoding: the role
  chunk, one chunk per token, the chunk with ``finish_reason``, the usage chunk when
  ``stream_options.include_usage`` is set, then ``data: [DONE]``. The JSON of every chunk is
  byte-for-byte what the shared fake writes, except that each ``tokN`` token is written as
  ``tokN@<time.time() when written to the socket>`` (the stamp ``stream_bench.py`` measures
  delays against). Without ``stream`` the whole answer is one ``chat.completion`` (no stamps,
  as before);
* ``GET /v1/models`` answers 404 (the scripts' model names cannot be listed);
* the timing is the shared fake's: the role chunk and the first token at once, then one chunk
  every ``delay`` seconds (finish and usage chunks included), ``[DONE]`` right after the last.
  Every stream's next chunk is an entry of one timer heap, on an absolute schedule
  (``start + k * delay``); the loop wakes up for the earliest entry and writes every chunk that
  is due, one ``send`` per chunk (the response head, the role chunk and the first token go in
  one; the last chunk, ``[DONE]`` and the end of the body in one). With ``delay=0`` every chunk
  is written at once, still one ``send`` each.

CPU on the 2-core dev VM: 11-16 µs per token alone with 150 streams of 50 tokens/s, ~20-25 µs in
the benchmark's capacity runs at 100-150 streams, ~40 µs or more with 10 streams (then nearly
every token is a wake-up of its own); the threaded fake costs 60-115 µs. At exit it prints its request, chunk and wake-up counts and its CPU time.

Not supported (the benchmark does not use them): scripted ``drop``/``stall`` faults, tool calls,
API-key checks. Scripted HTTP status faults (``?fault=429``) are answered.

    python benchmarks/fast_upstream.py --port 8001      # serves until SIGINT/SIGTERM
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import gc
import heapq
import itertools
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

try:
    from bestchat.testing.fake_openai import Script, prompt_tokens
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bestchat.testing.fake_openai import Script, prompt_tokens

MAX_HEAD = 64 * 1024
_now = time.time
_PLACEHOLDER = "\x00"
_PLACEHOLDER_JSON = json.dumps(_PLACEHOLDER)[1:-1]  # how json.dumps writes it inside a string


class _Date:
    """The ``Date`` header value, formatted once per second."""
    second = -1
    value = ""

    @classmethod
    def get(cls) -> str:
        now = int(_now())
        if now != cls.second:
            cls.second, cls.value = now, email.utils.formatdate(now, usegmt=True)
        return cls.value


def _head(status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", "Server: FastUpstream/1", f"Date: {_Date.get()}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _event(data: bytes) -> bytes:
    """One SSE event as one HTTP chunk."""
    payload = b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_DONE = _event(b"[DONE]") + b"0\r\n\r\n"  # the last event, then the end of the chunked body
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class _Stream:
    """One streamed answer: its chunks are written by the server's timer heap (``tick``)."""

    __slots__ = ("conn", "texts", "prefix", "suffix", "finish", "usage", "delay", "start", "emitted",
                 "total", "cancelled")

    def __init__(self, conn: _Connection, body: dict[str, Any], script: Script, model: str) -> None:
        self.conn = conn
        head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(_now()), "model": model}
        self.texts = script.chunks()
        # The JSON of a content chunk, split around its content (json.dumps, as the shared fake).
        template = json.dumps({**head, "choices": [{"index": 0, "delta": {"content": _PLACEHOLDER},
                                                    "finish_reason": None}]})
        prefix, suffix = template.split(_PLACEHOLDER_JSON)
        self.prefix = b"data: " + prefix.encode()
        self.suffix = suffix.encode() + b"\n\n"
        self.finish = _event(json.dumps({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                             .encode())
        usage = None
        if (body.get("stream_options") or {}).get("include_usage"):
            counts = {"prompt_tokens": prompt_tokens(body["messages"]), "completion_tokens": len(self.texts)}
            counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
            usage = _event(json.dumps({**head, "choices": [], "usage": counts}).encode())
        self.usage = usage
        self.delay = script.delay
        self.emitted = 0  # chunks after the role chunk: texts, finish, usage
        self.total = len(self.texts) + 1 + (usage is not None)
        self.cancelled = False
        role = _event(json.dumps({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                       "finish_reason": None}]}).encode())
        head_and_role = _head(200, "OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                                          ("Transfer-Encoding", "chunked")]) + role
        self.start = conn.loop.time()  # the schedule: chunk k (after the first token) at start + k * delay
        if self.delay > 0:
            self.tick(head_and_role)  # the first token goes out with the role chunk, as in the shared fake
        else:
            self.write_all(head_and_role)

    def _chunk(self, index: int) -> bytes:
        """Chunk ``index`` (0-based, after the role chunk), stamped now if it is a ``tokN`` token."""
        texts = self.texts
        if index < len(texts):
            text = texts[index]
            if text.startswith("tok") and text.endswith(" "):
                payload = b"%s%s@%.6f %s" % (self.prefix, text[:-1].encode(), _now(), self.suffix)
            else:
                payload = self.prefix + json.dumps(text)[1:-1].encode() + self.suffix
            return b"%x\r\n%s\r\n" % (len(payload), payload)
        if index == len(texts):
            return self.finish
        return self.usage  # type: ignore[return-value]

    def tick(self, before: bytes = b"") -> None:
        """Write the next chunk (called by the scheduler when it is due)."""
        if self.cancelled:
            return
        index = self.emitted
        texts = self.texts
        if index < len(texts) and texts[index][:3] == "tok" and texts[index][-1:] == " ":  # the hot path
            payload = b"%s%s@%.6f %s" % (self.prefix, texts[index][:-1].encode(), _now(), self.suffix)
            data = b"%x\r\n%s\r\n" % (len(payload), payload)
        else:
            data = self._chunk(index)
        index += 1
        self.emitted = index
        conn = self.conn
        if index >= self.total:
            conn.transport.write(before + data + _DONE)
            conn.stream_done()
            return
        conn.transport.write(before + data if before else data)
        conn.server.schedule(self.start + index * self.delay, self)

    def write_all(self, before: bytes) -> None:
        """``delay=0``: every chunk at once, still one ``send`` each as the shared fake does (the
        provider reads the same segments as before, so 0 ms/token runs stay comparable)."""
        write = self.conn.transport.write
        write(before + self._chunk(0))
        for index in range(1, self.total):
            write(self._chunk(index))
        write(_DONE)
        self.emitted = self.total
        self.conn.stream_done()

    def cancel(self) -> None:
        self.cancelled = True  # its entry stays in the scheduler's heap and is skipped when due


class _Connection(asyncio.Protocol):
    """One client connection: parses requests one after the other (keep-alive)."""

    def __init__(self, server: FastUpstream) -> None:
        self.server = server
        self.loop = server.loop
        self.buffer = bytearray()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.busy = False  # a response is being streamed or delayed
        self.stream: _Stream | None = None
        self.keep_alive = True
        self.closed = False
        self.continued = False

    # ---- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._process()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections -= 1
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None

    # ---- requests -------------------------------------------------------------------------------

    def _process(self) -> None:
        while not self.busy and not self.closed and self.buffer:
            request = self._parse()
            if request is None:
                return
            self._handle(*request)

    def _parse(self) -> tuple[str, str, dict[str, str], bytes] | None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                self._fail(431, "request head too large")
            return None
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self._fail(400, "bad request line")
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parsed = _dechunk(buffer, start)
            if parsed is None:
                self._continue(headers)
                return None
            body, consumed = parsed
        else:
            length = int(headers.get("content-length") or 0)
            if len(buffer) - start < length:
                self._continue(headers)
                return None
            body, consumed = bytes(buffer[start:start + length]), start + length
        del buffer[:consumed]
        self.continued = False
        connection = headers.get("connection", "").lower()
        self.keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        return method, target, headers, body

    def _continue(self, headers: dict[str, str]) -> None:
        if not self.continued and headers.get("expect", "").lower() == "100-continue":
            self.continued = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> None:
        path = target.split("?", 1)[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            # Its models are named by their script (``bench?tokens=..&delay=..``), which no list
            # can enumerate: it lists none, so a connection to it serves every model name
            # (BestChat restricts a connection to the models its server lists).
            return self._error(404, "this server lists no models")
        if method != "POST" or path != "/v1/chat/completions":
            return self._error(404, "not found")
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) \
                or not isinstance(body.get("messages"), list):
            return self._error(400, "model and messages are required")
        model, _, query = body["model"].partition("?")
        try:
            script = Script(tokens=200).with_query(query) if query else Script(tokens=200)
        except ValueError as exc:
            return self._error(400, str(exc))
        if script.fault in ("drop", "stall") or script.tool_calls:
            return self._error(400, "fast_upstream does not script drop/stall faults or tool calls")
        self.server.requests += 1
        if script.ttft > 0:
            self.busy = True
            self.loop.call_later(script.ttft, self._answer, body, script, model)
        else:
            self._answer(body, script, model)

    def _answer(self, body: dict[str, Any], script: Script, model: str) -> None:
        self.busy = False
        if self.closed:
            return
        if isinstance(script.fault, int):
            headers = [("Retry-After", f"{script.retry_after:g}")] if script.fault == 429 else []
            return self._error(script.fault, script.fault_message or f"scripted fault {script.fault}",
                               "server_error", headers)
        if body.get("stream"):
            self.busy = True
            self.stream = _Stream(self, body, script, model)
            return
        usage = {"prompt_tokens": prompt_tokens(body["messages"]), "completion_tokens": len(script.chunks())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        message = {"role": "assistant", "content": script.text() or None}
        self._json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(_now()),
                         "model": model, "usage": usage,
                         "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

    def stream_done(self) -> None:
        self.stream = None
        self.busy = False
        self.server.completed += 1
        if not self.keep_alive:
            self.transport.close()
        elif self.buffer:
            self.loop.call_soon(self._process)

    # ---- plain answers --------------------------------------------------------------------------

    def _json(self, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.transport.write(_head(status, _REASONS.get(status, "Error"),
                                   [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                    *(headers or [])]) + data)
        if not self.keep_alive:
            self.transport.close()

    def _error(self, status: int, message: str, kind: str = "invalid_request_error",
               headers: list[tuple[str, str]] | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}}, headers)

    def _fail(self, status: int, message: str) -> None:
        self.keep_alive = False
        self._error(status, message)
        self.closed = True


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A complete chunked body from ``buffer[start:]``: (body, end offset), None if incomplete."""
    parts, pos = [], start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";", 1)[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            return (b"".join(parts), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < pos + size + 2:
            return None
        parts.append(bytes(buffer[pos:pos + size]))
        pos += size + 2


class FastUpstream:
    """The server; ``serve()`` runs it in the current thread until SIGINT/SIGTERM.

    Every stream's next chunk is an entry ``(due, n, stream)`` of one heap, and the loop has one
    timer armed for the earliest entry: each wake-up writes every chunk that is due (several
    streams at once under load, as epoll's timeout has a 1 ms resolution), which costs less than
    an asyncio ``TimerHandle`` per chunk."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connections = 0
        self.requests = 0
        self.completed = 0
        self._heap: list[tuple[float, int, _Stream]] = []
        self._order = itertools.count()
        self._armed = float("inf")  # when the loop timer fires; inf: no timer
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        self.wakeups = 0  # timer wake-ups, and the chunks they wrote (printed at exit)
        self.chunks = 0

    def schedule(self, due: float, stream: _Stream) -> None:
        heapq.heappush(self._heap, (due, next(self._order), stream))
        if due < self._armed and not self._running:
            if self._timer is not None:
                self._timer.cancel()
            self._armed = due
            self._timer = self.loop.call_at(due, self._fire)

    def _fire(self) -> None:
        heap, pop = self._heap, heapq.heappop
        self._running = True
        self.wakeups += 1
        try:
            now = self.loop.time()
            while heap and heap[0][0] <= now:
                stream = pop(heap)[2]
                try:
                    stream.tick()
                except Exception:  # noqa: BLE001 - one broken stream must not stop the others
                    traceback.print_exc()
                    stream.conn.transport.abort()
                self.chunks += 1
        finally:
            self._running = False
            if heap:
                self._armed = heap[0][0]
                self._timer = self.loop.call_at(self._armed, self._fire)
            else:
                self._armed, self._timer = float("inf"), None

    async def _main(self, ready: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        server = await self.loop.create_server(lambda: _Connection(self), self.host, self.port, backlog=1024,
                                               reuse_address=True)
        self.port = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, stop.set)
        print(f"fast upstream on http://{self.host}:{self.port}/v1", flush=True)
        gc.collect()
        gc.freeze()  # the long-lived objects (modules, the server) are never scanned again
        async with server:
            await stop.wait()
        times = os.times()
        print(f"fast upstream: {self.requests} requests, {self.completed} streams completed, {self.chunks} timed "
              f"chunks in {self.wakeups} timer wake-ups; CPU user {times.user:.2f} s, system {times.system:.2f} s",
              flush=True)

    def serve(self) -> None:
        asyncio.run(self._main())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    FastUpstream(args.host, args.port).serve()


if __name__ == "__main__":
    main()
