"""A WebSocket client of ``/ws``'s handler in this process, for tests: it speaks to the handler
only through the connection it is given (the ``receive``/``send``/``close`` of
``simple_websocket``), as a connected browser does: frames in, frames out, and how the
connection was closed.

The test process is not monkey-patched by gevent, so no real server can serve ``/ws`` here;
``tests/integration`` and ``tests/test_ws_fuzz.py`` drive real sockets on real servers. The
socket runs on the in-memory bus for the same reason (the Redis bus's blocking reader would
stall this process); the database and the admission stay the backend's.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import gevent
from gevent.queue import Empty, Queue
from simple_websocket import ConnectionClosed

from bestchat.extensions import db
from bestchat.models import User
from bestchat.security.authn import SocketCredentials
from bestchat.streaming import get_bus
from bestchat.streaming.memory_bus import MemoryBus
from bestchat.ws import ChatSocket

# Seconds a test waits for a frame before failing (a safety bound, not a timing assertion).
WAIT = 5.0


def memory_bus(app) -> None:
    """Live delivery in this process: the in-memory bus stands in for Redis's."""
    if not isinstance(get_bus(app), MemoryBus):
        app.extensions["bestchat_bus"] = MemoryBus(maxlen=app.config["STREAM_MAXLEN"], ttl=app.config["STREAM_TTL"])


class Connection:
    """The server side of one connection, as ``simple_websocket.Server`` offers it."""

    def __init__(self, longest_wait: float | None = None) -> None:
        self.longest_wait = longest_wait
        self.incoming: Queue = Queue()
        self.outgoing: Queue = Queue()
        self.closed: tuple[int, str] | None = None

    def receive(self, timeout: float | None = None) -> str | None:
        if self.closed:
            raise ConnectionClosed()
        if self.longest_wait is not None:
            timeout = min(timeout or self.longest_wait, self.longest_wait)
        try:
            raw = self.incoming.get(timeout=timeout)
        except Empty:
            return None
        if raw is None or self.closed:
            raise ConnectionClosed()
        return raw

    def send(self, text: str) -> None:
        if self.closed:
            raise ConnectionClosed()
        self.outgoing.put(json.loads(text))

    def close(self, reason: int = 1000, message: str = "") -> None:
        if self.closed is not None:
            raise ConnectionClosed()
        self.closed = (reason, message)
        self.incoming.put(None)


class SocketClient:
    """One open socket of ``user_id`` (opened with its web session's credentials when
    ``session``, else the account's), its handler running in a greenlet. ``idle_wait`` caps
    how long the handler's wait for a frame lasts before it finds none (the handler's own
    timeout otherwise)."""

    def __init__(self, app, user_id: str | uuid.UUID, *, session: bool = False, idle_wait: float | None = None):
        memory_bus(app)
        with app.app_context():
            user = db.session.get(User, uuid.UUID(str(user_id)))
            db.session.refresh(user)
            db.session.expunge(user)  # as the socket holds it: loaded when it connected
        credentials = SocketCredentials.of_session(user) if session else SocketCredentials.of_account(user)
        self.connection = Connection(idle_wait)
        self.handler = gevent.spawn(ChatSocket(self.connection, app, user, credentials).run)

    def send(self, frame: dict[str, Any] | str | bytes) -> None:
        self.connection.incoming.put(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    def receive(self, timeout: float = WAIT) -> dict[str, Any]:
        """The next frame the server sent (fails after ``timeout`` seconds without one)."""
        try:
            return self.connection.outgoing.get(timeout=timeout)
        except Empty:
            raise AssertionError(f"no frame within {timeout} s (closed: {self.connection.closed})") from None

    def ask(self, frame: dict[str, Any] | str | bytes) -> dict[str, Any]:
        """Send ``frame``; the first frame that comes back."""
        self.send(frame)
        return self.receive()

    def receive_until(self, kind: str, count: int = 1) -> list[dict[str, Any]]:
        """Frames up to the ``count``-th of type ``kind``, or up to an ``error`` frame."""
        frames: list[dict[str, Any]] = []
        while count:
            frames.append(self.receive())
            if frames[-1]["type"] == "error":
                break
            count -= frames[-1]["type"] == kind
        return frames

    def frames_until_closed(self) -> list[dict[str, Any]]:
        """Every frame sent until the server closed the connection."""
        self.handler.join(timeout=WAIT)
        assert self.connection.closed is not None, "the server did not close the socket"
        frames = []
        while not self.connection.outgoing.empty():
            frames.append(self.connection.outgoing.get())
        return frames

    @property
    def closed(self) -> tuple[int, str] | None:
        """The close code and reason the server gave, None while open."""
        return self.connection.closed

    def hang_up(self) -> None:
        """Disconnect, as a client does; the handler must end cleanly."""
        self.connection.incoming.put(None)
        self.handler.join(timeout=WAIT)
        assert self.handler.dead and self.handler.successful()

    def __enter__(self) -> SocketClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.hang_up()
