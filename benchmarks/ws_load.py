#!/usr/bin/env python
"""The lean WebSocket load client of ``stream_bench.py``: one process, one asyncio loop.

It replaces the gevent + ``websocket-client`` clients (140-240 µs of CPU per received frame,
more than the server can spare at 150 streams on 2 cores); this one costs 14-20 µs per frame
with 50-150 streams of 50 frames/s. No dependency: a minimal RFC 6455
client on an ``asyncio.Protocol`` (handshake, masked client text frames, unmasked server frames,
fragments, ping -> pong, close), no compression offered. Every frame is stamped with
``time.time()`` when the bytes it came in are handed over by the socket (the clock of the fake
upstream's token stamps), then parsed and dispatched at once, exactly as the old client did with
each ``ws.recv()``.

``stream_bench.py`` starts it as a child process and drives it with one JSON object per line
on stdin, each answered with one JSON line on stdout:

* ``{"cmd": "open", "ws_url", "token", "conversations": [...]}``: one socket per conversation,
  each subscribed to it (``subscribe`` then ``ping``, waiting for the ``pong``). Replaces the
  sockets of the previous ``open``. Answer: ``{"opened", "open_s", "errors"}``.
* ``{"cmd": "run", "model", "starts": [wall time per socket], "turns": N or null,
  "end": wall time or null, "deadline": wall time, "close": bool}``: socket ``i`` waits until
  ``starts[i]``, then chats back to back (send, read every frame up to the answer's
  ``message.completed``/``message.failed``/``error``) until it has done ``turns`` answers or,
  with ``end``, until an answer ends after ``end``. Sockets still chatting at ``deadline`` are
  stopped and counted in ``unfinished``. Answer: ``{"turns", "unfinished", "errors"}``; the turns
  stay here until ``fetch`` (so that serialising them is not in the measured window).
* ``{"cmd": "fetch"}``: the turns of the last ``run`` (the fields of ``stream_bench.Turn``).
* ``{"cmd": "ping"}``: a ``ping`` frame on every open socket; ``{"alive": sockets that answered
  with a pong within 30 s}``.
* ``{"cmd": "close"}``, ``{"cmd": "exit"}``.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import os
import sys
import time
from typing import Any, Callable
from urllib.parse import urlsplit

_time = time.time
_dumps = json.dumps
_scan = json.JSONDecoder().scan_once  # the C scanner, without json.loads' encoding sniffing and regexes


def _loads(payload: bytes) -> Any:
    """``json.loads`` of a server frame (compact JSON text), at half the cost."""
    text = payload.decode()
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)  # raises the usual error
    return value if end == len(text) else json.loads(text)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _mask(payload: bytes) -> bytes:
    """``payload`` XORed with a fresh 4-byte key, the key first (RFC 6455 5.3)."""
    key = os.urandom(4)
    n = len(payload)
    if not n:
        return key
    stream = (key * (n // 4 + 1))[:n]
    return key + (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + _mask(payload)


class Turn:
    """One chat answer as the client saw it (serialised as ``stream_bench.Turn``'s fields)."""

    __slots__ = ("t_send", "t_first", "t_created", "t_end", "message_id", "status", "error", "chunks", "last_seq",
                 "done")

    def __init__(self, t_send: float) -> None:
        self.t_send = t_send
        self.t_first: float | None = None
        self.t_created: float | None = None
        self.t_end: float | None = None
        self.message_id: str | None = None
        self.status: str | None = None
        self.error: str | None = None
        self.chunks: list[tuple[float, int, str]] = []
        self.last_seq: int | None = None
        self.done: asyncio.Future | None = None

    def as_json(self) -> dict[str, Any]:
        return {"t_send": self.t_send, "t_first": self.t_first, "t_created": self.t_created, "t_end": self.t_end,
                "message_id": self.message_id, "status": self.status, "error": self.error,
                "chunks": self.chunks, "last_seq": self.last_seq}


# One read buffer for every socket: asyncio calls get_buffer(), recv_into() and buffer_updated()
# back to back, and buffer_updated() copies out what it keeps.
_READ_BUFFER = memoryview(bytearray(64 * 1024))


class ChatSocket(asyncio.BufferedProtocol):
    """One WebSocket subscribed to one conversation; ``turn()`` sends and reads one answer.

    A buffered protocol: every socket is read into one preallocated buffer (``recv_into``).
    A plain ``asyncio.Protocol`` gets a fresh 256 KiB ``bytes`` per read, which glibc serves with
    an ``mmap``/``munmap`` pair and page faults: more CPU than the frame itself."""

    def __init__(self, conversation_id: str, host: str, target: str) -> None:
        self.conversation_id = conversation_id
        self.host, self.target = host, target
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.upgraded = False
        self.key = base64.b64encode(os.urandom(16))
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()  # handshake done
        self.pong: asyncio.Future | None = None
        self.turn_state: Turn | None = None
        self.fragments: list[bytes] = []
        self.closed = False
        self.count = 0

    # ---- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(  # type: ignore[attr-defined]
            b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self.target.encode(), self.host.encode(), self.key))

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        now = _time()
        data = _READ_BUFFER[:nbytes].tobytes()
        if self.rest:
            data = self.rest + data
            self.rest = b""
        if not self.upgraded:
            data = self._handshake(data)
            if not data:
                return
        size = len(data)
        pos = 0
        while size - pos >= 2:
            b0 = data[pos]
            length = data[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[start:start + 2], "big")
                start += 2
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[start:start + 8], "big")
                start += 8
            masked = data[pos + 1] & 0x80
            if masked:  # servers must not mask, but decode it if one does
                start += 4
            end = start + length
            if end > size:
                break
            payload = data[start:end]
            if masked:
                key = data[start - 4:start]
                stream = (key * (length // 4 + 1))[:length]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(length, "big")
            pos = end
            if b0 == 0x81:  # final text frame: the hot path
                self.message(now, payload)
            else:
                self._other(b0, payload, now)
        if pos < size:
            self.rest = data[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = f"connection lost: {exc!r}" if exc else "connection closed by the server"
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(error))
        if self.pong is not None and not self.pong.done():
            self.pong.set_exception(ConnectionError(error))
        turn = self.turn_state
        if turn is not None and turn.done is not None and not turn.done.done():
            turn.error = error
            turn.t_end = _time()
            turn.done.set_result(None)

    # ---- protocol details -----------------------------------------------------------------------

    def _handshake(self, data: bytes) -> bytes:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self.rest = data
            return b""
        head = data[:end].decode("latin-1").split("\r\n")
        accept = base64.b64encode(hashlib.sha1(self.key + WS_GUID).digest()).decode()
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head[1:])}
        if " 101 " not in head[0] + " " or headers.get("sec-websocket-accept") != accept:
            self.ready.set_exception(ConnectionError(f"handshake refused: {head[0]}"))
            self.transport.close()  # type: ignore[union-attr]
            return b""
        self.upgraded = True
        self.ready.set_result(None)
        return data[end + 4:]

    def _other(self, b0: int, payload: bytes, now: float) -> None:
        opcode = b0 & 0x0F
        if opcode in (0x1, 0x2):  # first fragment
            self.fragments = [payload]
        elif opcode == 0x0:
            self.fragments.append(payload)
        elif opcode == 0x9:  # ping
            self.send(0xA, payload)
            return
        elif opcode == 0xA:
            return
        elif opcode == 0x8:  # close: answer it, then the transport closes
            if not self.closed:
                self.send(0x8, payload[:2])
                self.transport.close()  # type: ignore[union-attr]
                self.closed = True
            return
        if b0 & 0x80:
            message, self.fragments = b"".join(self.fragments), []
            self.message(now, message)

    def send(self, opcode: int, payload: bytes) -> None:
        if not self.closed:
            self.transport.write(client_frame(opcode, payload))  # type: ignore[union-attr]

    def send_json(self, frame: dict[str, Any]) -> None:
        self.send(0x1, _dumps(frame).encode())

    # ---- the chat -------------------------------------------------------------------------------

    def message(self, now: float, payload: bytes) -> None:
        frame = _loads(payload)
        kind = frame["type"]
        turn = self.turn_state
        if turn is None:
            if kind == "pong" and self.pong is not None and not self.pong.done():
                self.pong.set_result(None)
            return
        if kind == "chunk":
            if turn.message_id is None or frame["message_id"] == turn.message_id:
                if turn.t_first is None:
                    turn.t_first = now
                turn.chunks.append((now, frame["seq"], frame["delta"]))
        elif kind == "message.created":
            if frame["message"]["role"] == "assistant":
                turn.message_id = frame["message"]["id"]
                turn.t_created = now
        elif kind == "message.completed" or kind == "message.failed":
            if frame["message_id"] == turn.message_id:
                turn.t_end = now
                turn.status = frame.get("status")
                turn.last_seq = frame.get("last_seq")
                if kind == "message.failed":
                    turn.error = _dumps(frame.get("error"))[:300]
                self.turn_state = None
                turn.done.set_result(None)  # type: ignore[union-attr]
        elif kind == "error":
            turn.error = f"{frame.get('code')}: {frame.get('message')}"
            turn.t_end = now
            self.turn_state = None
            turn.done.set_result(None)  # type: ignore[union-attr]

    async def ping(self, timeout: float) -> None:
        self.pong = asyncio.get_running_loop().create_future()
        self.send_json({"type": "ping"})
        await asyncio.wait_for(self.pong, timeout)

    async def subscribe(self, timeout: float) -> None:
        await asyncio.wait_for(self.ready, timeout)
        self.send_json({"type": "subscribe", "conversation_id": self.conversation_id})
        await self.ping(timeout)

    async def turn(self, model: str) -> Turn:
        if self.closed:
            raise ConnectionError("socket closed")
        self.count += 1
        turn = Turn(_time())
        turn.done = asyncio.get_running_loop().create_future()
        self.turn_state = turn
        self.send_json({"type": "send", "conversation_id": self.conversation_id, "model": model,
                        "content": f"benchmark question {self.count}", "client_id": f"b{self.count}"})
        await turn.done
        return turn

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.send(0x8, (1000).to_bytes(2, "big"))
            self.closed = True
            self.transport.close()


class LoadClient:
    def __init__(self) -> None:
        self.sockets: list[ChatSocket] = []
        self.turns: list[Turn] = []

    async def open(self, ws_url: str, token: str, conversations: list[str], parallel: int = 50,
                   timeout: float = 60) -> dict[str, Any]:
        self.close()
        url = urlsplit(ws_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        target = f"{url.path or '/'}?token={token}"
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(parallel)
        errors: list[str] = []

        async def one(conversation_id: str) -> ChatSocket | None:
            async with limit:
                try:
                    _, sock = await asyncio.wait_for(loop.create_connection(
                        lambda: ChatSocket(conversation_id, f"{host}:{port}", target), host, port), timeout)
                    await sock.subscribe(timeout)
                    return sock
                except Exception as error:  # noqa: BLE001 - reported
                    errors.append(repr(error)[:200])
                    return None

        started = _time()
        opened = await asyncio.gather(*(one(c) for c in conversations))
        self.sockets = [s for s in opened if s is not None]
        return {"opened": len(self.sockets), "open_s": round(_time() - started, 3), "errors": errors[:5]}

    async def run(self, model: str, starts: list[float], turns: int | None, end: float | None,
                  deadline: float, close: bool) -> dict[str, Any]:
        self.turns = []
        out = self.turns
        errors: list[str] = []

        async def chat(sock: ChatSocket, start: float) -> None:
            delay = start - _time()
            if delay > 0:
                await asyncio.sleep(delay)
            done = 0
            while (turns is None or done < turns) and (end is None or _time() < end):
                out.append(await sock.turn(model))
                done += 1

        tasks = [asyncio.ensure_future(chat(s, t)) for s, t in zip(self.sockets, starts)]
        # No cyclic garbage collection while chatting: the turns pile up tens of thousands of
        # tracked objects that every collection would walk again, and nothing here makes cycles
        # that matter for a few minutes. Collected once the run is over.
        gc.disable()
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
            self.close()
        return {"turns": len(out), "unfinished": len(pending), "errors": errors[:5]}

    async def ping(self, timeout: float = 30) -> dict[str, Any]:
        async def one(sock: ChatSocket) -> bool:
            try:
                await sock.ping(timeout)
                return True
            except Exception:  # noqa: BLE001 - counted
                return False
        results = await asyncio.gather(*(one(s) for s in self.sockets))
        return {"alive": sum(results)}

    def close(self) -> dict[str, Any]:
        for sock in self.sockets:
            sock.close()
        closed = len(self.sockets)
        self.sockets = []
        return {"closed": closed}

    def fetch(self) -> dict[str, Any]:
        turns, self.turns = self.turns, []
        return {"turns": [t.as_json() for t in turns]}


async def serve_commands(extra: dict[str, Callable[..., Any]] | None = None) -> None:
    """One JSON command per stdin line, one JSON answer per stdout line; ``extra`` adds
    commands of the caller's (name -> a function of the command's fields)."""
    extra = extra or {}
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
            if name in extra:
                answer = extra[name](**command)
            elif name == "open":
                answer = await client.open(**command)
            elif name == "run":
                answer = await client.run(**command)
            elif name == "ping":
                answer = await client.ping(**command)
            elif name == "fetch":
                answer = client.fetch()
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
