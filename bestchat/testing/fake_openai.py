"""A fake OpenAI-compatible HTTP server for tests and benchmarks.

It speaks real HTTP/1.1 on 127.0.0.1 (keep-alive, chunked SSE), one thread per connection, so
providers are tested through their real HTTP stack. What it answers is a :class:`Script`:

* ``server.script`` is the default for every request;
* ``server.enqueue(Script(...))`` scripts the next request(s), first in first out;
* the model name can override fields for one request, query-string style:
  ``"gpt-4o-mini?tokens=100&delay=0.01"``, ``"m?fault=429&retry_after=3"``,
  ``"m?fault=drop&fault_after=2"`` (the provider sends ``gpt-4o-mini?...`` unchanged, so this also
  works from another process, e.g. a benchmark driving a worker).

Every request is recorded in ``server.requests`` (:class:`RecordedRequest`, header names
lowercased). ``python -m bestchat.testing.fake_openai --port 8001 --ttft 0.2 --delay 0.02``
serves until interrupted and prints its base URL.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

FAULTS = ("drop", "stall")


@dataclass
class Script:
    """What the server does for one request.

    ``fault`` is an HTTP status (``401``, ``429``, ``500``...) answered with an OpenAI-style
    error body (message ``fault_message``, ``Retry-After: retry_after`` on a 429), ``"drop"`` (close the connection after ``fault_after`` chunks) or ``"stall"``
    (send nothing more for ``stall`` seconds after ``fault_after`` chunks).
    """

    content: str | None = None
    tokens: int = 8
    ttft: float = 0.0
    delay: float = 0.0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    fault: int | str | None = None
    fault_after: int = 0
    fault_message: str | None = None
    retry_after: float = 1
    stall: float = 60.0

    def chunks(self) -> list[str]:
        """The text deltas streamed, in order; their concatenation is the answer."""
        if self.content is not None:
            return re.findall(r"\s*\S+\s*|\s+", self.content) if self.content else []
        return [f"tok{i} " for i in range(self.tokens)]

    def text(self) -> str:
        """The whole answer."""
        return "".join(self.chunks())

    def with_query(self, query: str) -> Script:
        """A copy with fields overridden from ``a=1&b=x`` (values parsed to the field's type)."""
        changes: dict[str, Any] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in ("content", "fault_message"):
                changes[key] = value
            elif key == "fault":
                changes[key] = value if value in FAULTS else int(value)
            elif key in ("tokens", "fault_after"):
                changes[key] = int(value)
            elif key in ("ttft", "delay", "retry_after", "stall"):
                changes[key] = float(value)
            else:
                raise ValueError(f"unknown script field {key!r}")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: header names are lowercased, ``body`` is the parsed JSON."""
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """The fake's token count of a prompt: whitespace-separated words of string contents."""
    return sum(len(m["content"].split()) for m in messages if isinstance(m.get("content"), str))


class FakeOpenAI:
    """The server. It binds on creation (port 0: a free one); ``start()`` serves from a daemon
    thread, ``stop()`` (or leaving the ``with`` block) closes it and every open connection.

    :param api_key: when set, requests without ``Authorization: Bearer <api_key>`` get a 401
        whose message echoes the key they sent (as OpenAI does), to prove callers redact it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, script: Script | None = None,
                 api_key: str | None = None, models: tuple[str, ...] = ("gpt-4o-mini", "fake-model")):
        self.script = script or Script()
        self.api_key = api_key
        self.models = models
        self.requests: list[RecordedRequest] = []
        self._queue: list[Script] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL to give an OpenAI client, ending in ``/v1``."""
        return f"http://{self._httpd.server_address[0]}:{self.port}/v1"

    def enqueue(self, *scripts: Script) -> None:
        """Use these scripts, in order, for the next requests (then ``self.script`` again)."""
        with self._lock:
            self._queue.extend(scripts)

    def start(self) -> FakeOpenAI:
        """Serve from a daemon thread (the port is bound already, so ``url`` is valid)."""
        self._thread = threading.Thread(target=self.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` (or, from the command line, Ctrl-C)."""
        self._httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        """Stop serving; stalled and sleeping handlers wake up and close their connections."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections too
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_script(self, model: str) -> Script:
        with self._lock:
            script = self._queue.pop(0) if self._queue else self.script
        _, _, query = model.partition("?")
        return script.with_query(query) if query else script

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True when it is stopping."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, dropped pools, ``stop()``) are normal here."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Dropped(Exception):
    """The script asks to drop the connection now."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # every SSE chunk goes out at once
    server_version = "FakeOpenAI/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        pass

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self) -> None:
        self.fake._track(self.connection, False)
        super().finish()

    # ---- routing --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._receive(None)
        if self.path.rstrip("/") != "/v1/models":
            self._send_error(404, "not found", "invalid_request_error")
        elif self._authorized():
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.fake.models]
            self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            body = None
        self._receive(body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, "not found", "invalid_request_error")
        elif not isinstance(body, dict) or not isinstance(body.get("model"), str) \
                or not isinstance(body.get("messages"), list):
            self._send_error(400, "model and messages are required", "invalid_request_error")
        elif self._authorized():
            try:
                script = self.fake._next_script(body["model"])
            except ValueError as exc:
                self._send_error(400, str(exc), "invalid_request_error")
                return
            try:
                self._complete(body, script)
            except (_Dropped, ConnectionError):
                self.close_connection = True

    def _receive(self, body: Any) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(RecordedRequest(self.command, self.path, headers, body))

    def _authorized(self) -> bool:
        expected = self.fake.api_key
        sent = self.headers.get("Authorization", "")
        if expected is None or sent == f"Bearer {expected}":
            return True
        self._send_error(401, f"Incorrect API key provided: {sent.removeprefix('Bearer ')}",
                         "invalid_request_error", code="invalid_api_key")
        return False

    # ---- answers --------------------------------------------------------------------------

    def _complete(self, body: dict[str, Any], script: Script) -> None:
        if self.fake._sleep(script.ttft):
            raise _Dropped
        if isinstance(script.fault, int):
            headers = {"Retry-After": f"{script.retry_after:g}"} if script.fault == 429 else {}
            message = script.fault_message or f"scripted fault {script.fault}"
            self._send_error(script.fault, message, "server_error", headers)
            return
        model = body["model"].partition("?")[0]
        usage = {"prompt_tokens": prompt_tokens(body["messages"]), "completion_tokens": len(script.chunks())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(model, script, usage if include_usage else None)
        else:
            self._whole(model, script, usage)

    def _whole(self, model: str, script: Script, usage: dict[str, int]) -> None:
        if script.fault == "drop":
            raise _Dropped
        if script.fault == "stall":
            self.fake._sleep(script.stall)
            raise _Dropped
        message: dict[str, Any] = {"role": "assistant", "content": script.text() or None}
        if script.tool_calls:
            message["tool_calls"] = [_tool_call(i, call, call_arguments(call))
                                     for i, call in enumerate(script.tool_calls)]
        finish = "tool_calls" if script.tool_calls else "stop"
        self._send_json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                              "model": model, "usage": usage,
                              "choices": [{"index": 0, "message": message, "finish_reason": finish}]})

    def _stream(self, model: str, script: Script, usage: dict[str, int] | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        sent = 0

        def emit(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> None:
            nonlocal sent
            if script.fault in FAULTS and sent == script.fault_after:
                if script.fault == "stall":
                    self.fake._sleep(script.stall)
                raise _Dropped
            if sent > 1 and self.fake._sleep(script.delay):
                raise _Dropped
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            self._write_event(json.dumps({**head, "choices": choices, **extra}))
            sent += 1

        emit({"role": "assistant", "content": ""})
        for text in script.chunks():
            emit({"content": text})
        for index, call in enumerate(script.tool_calls):
            arguments = call_arguments(call)
            emit({"tool_calls": [{"index": index, **_tool_call(index, call, "")}]})
            for start in range(0, len(arguments), 8):
                emit({"tool_calls": [{"index": index, "function": {"arguments": arguments[start:start + 8]}}]})
        emit({}, "tool_calls" if script.tool_calls else "stop")
        if usage is not None:
            emit(None, usage=usage)
        self._write_event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    # ---- wire helpers ---------------------------------------------------------------------

    def _write_event(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None,
                    code: str | None = None) -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)


def call_arguments(call: dict[str, Any]) -> str:
    """A scripted tool call's arguments as the JSON string the model streams."""
    return json.dumps(call.get("arguments", {}))


def _tool_call(index: int, call: dict[str, Any], arguments: str) -> dict[str, Any]:
    return {"id": call.get("id", f"call_{index}"), "type": "function",
            "function": {"name": call["name"], "arguments": arguments}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--tokens", type=int, default=Script.tokens, help="chunks per answer")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first chunk")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    server = FakeOpenAI(args.host, args.port, api_key=args.api_key,
                        script=Script(tokens=args.tokens, ttft=args.ttft, delay=args.delay))
    serve_until_interrupted(server)


def serve_until_interrupted(server: FakeOpenAI) -> None:
    """Serve in this thread until interrupted (Ctrl-C or SIGINT), then stop cleanly."""
    print(f"fake OpenAI server on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
