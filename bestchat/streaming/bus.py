"""The stream bus interface, the unit it delivers, and the one place an implementation is chosen.

A bus does three things. It keeps each assistant message's events in a replayable, capped
*stream* (chunks with their ``seq``, then one terminal event); it delivers every event live
to whoever in this process follows the message's *conversation*; and it carries requests to
cancel a generation to the process that runs it. Publishers: the frame writer
(:mod:`bestchat.streaming.frame_writer`) appends chunks with :meth:`StreamBus.append_many`,
whoever ends a message appends its terminal event with :meth:`StreamBus.append_final`, and
events that are not part of a message's stream (``message.created``, typing, conversation
changes) go out with :meth:`StreamBus.broadcast` (the dispatcher announces answers with
:meth:`StreamBus.broadcast_many`). Readers (WebSocket and SSE handlers) go through
:class:`bestchat.streaming.subscriber.Subscriber`.

:func:`init_bus` chooses the implementation once, at app start: the Redis bus whenever
``REDIS_URL`` is set (which Celery workers require too), else the in-memory bus of embedded
mode.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Callable

from flask import Flask, current_app

from bestchat.streaming import events


class BusUnavailable(Exception):
    """The bus cannot deliver live events right now (Redis unreachable)."""


class Delivery:
    """One event as delivered: its JSON (sent to clients verbatim) and the few fields routing
    and de-duplication need (``kind``, ``message_id``, ``seq``), so that relaying a chunk never
    parses its JSON; :attr:`event` parses it on first use.

    The JSON is kept as the bus handed it over: text (``text``, what publishers build) or UTF-8
    bytes (``raw``, what the Redis bus's reader reads off the wire); each form is made from the
    other at most once. One Delivery reaches every listener of its conversation in this
    process, so what a writer derives from it (a WebSocket frame, an SSE event) is built once
    and shared: :meth:`encoded`.

    ``origin`` names the client that caused it (typing), so that client can skip its own.
    """

    __slots__ = ("_text", "_raw", "origin", "kind", "message_id", "seq", "_event", "_encoded")

    def __init__(self, event: dict[str, Any] | None, text: str | None, origin: str | None = None, *,
                 kind: str | None = None, message_id: str | None = None, seq: int = 0,
                 raw: bytes | None = None):
        self._text = text
        self._raw = raw
        self.origin = origin
        self._event = event
        self._encoded: dict[Callable[[Delivery], Any], Any] | None = None
        if event is not None:
            kind = event.get("type")
            message_id = event.get("message_id")
            if message_id is None and isinstance(event.get("message"), dict):
                message_id = event["message"].get("id")  # message.created
            seq = event.get("seq") or 0
        self.kind = kind
        self.message_id = message_id
        self.seq = seq

    @classmethod
    def of(cls, event: dict[str, Any], origin: str | None = None) -> Delivery:
        return cls(event, json.dumps(event, separators=(",", ":")), origin)

    @property
    def text(self) -> str:
        """The event's JSON text."""
        if self._text is None:
            self._text = self._raw.decode()
        return self._text

    @property
    def raw(self) -> bytes:
        """The event's JSON as UTF-8 bytes."""
        if self._raw is None:
            self._raw = self._text.encode()
        return self._raw

    @property
    def event(self) -> dict[str, Any]:
        if self._event is None:
            self._event = json.loads(self.raw if self._text is None else self._text)
        return self._event

    def encoded(self, encode: Callable[[Delivery], Any]) -> Any:
        """``encode(self)``, computed once per Delivery: every subscriber of this process that
        writes the event the same way (:mod:`bestchat.ws`, :mod:`bestchat.api.messages`)
        shares the bytes."""
        cache = self._encoded
        if cache is None:
            cache = self._encoded = {}
        else:
            value = cache.get(encode)
            if value is not None:
                return value
        value = cache[encode] = encode(self)
        return value

    def wire(self) -> str:
        """The form relayed between processes: ``origin kind message_id seq json``: a short
        header of space-separated routing fields before the JSON, so that a reader routes and
        de-duplicates without parsing the JSON (:meth:`from_raw`)."""
        return f"{self.origin or '-'} {self.kind} {self.message_id or '-'} {self.seq} {self.text}"

    @classmethod
    def from_wire(cls, data: str) -> Delivery:
        origin, kind, message_id, seq, text = data.split(" ", 4)
        return cls(None, text, None if origin == "-" else origin, kind=kind,
                   message_id=None if message_id == "-" else message_id, seq=int(seq))

    @classmethod
    def from_raw(cls, data: bytes) -> Delivery:
        """:meth:`from_wire` of the bytes read off a pub/sub connection: the JSON stays bytes."""
        origin, kind, message_id, seq, raw = data.split(b" ", 4)
        return cls(None, None, None if origin == b"-" else origin.decode(), kind=kind.decode(),
                   message_id=None if message_id == b"-" else message_id.decode(), seq=int(seq),
                   raw=raw)


# Delivered to listeners after the bus lost live events (a Redis reconnect): resume from the stream.
RESYNC = Delivery({"type": "bus.resync"}, "")

Listener = Callable[[Delivery], None]
# Called with the id of a message whose cancellation was requested, or None when some
# requests may have been missed (reconnect): check the flags again.
CancelListener = Callable[[str | None], None]


class StreamBus(ABC):
    """Streams per message, live delivery per conversation, and cancellation flags."""

    @abstractmethod
    def append_many(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Add chunks ``(conversation_id, message_id, event)`` to their messages' streams and
        deliver them live, in order, in one go (one Redis round trip)."""

    @abstractmethod
    def append_final(self, conversation_id: str, message_id: str, event: dict[str, Any]) -> None:
        """Add the message's terminal event to its stream and deliver it live: the stream then
        expires after the configured TTL, and the message's cancel flag is dropped."""

    @abstractmethod
    def broadcast(self, conversation_id: str, event: dict[str, Any], *,
                  origin: str | None = None) -> None:
        """Deliver ``event`` live to the conversation's followers without storing it."""

    def broadcast_many(self, conversation_id: str, events_: list[dict[str, Any]]) -> None:
        """:meth:`broadcast` each of ``events_`` in order, in one go (one Redis round trip)."""
        for event in events_:
            self.broadcast(conversation_id, event)

    @abstractmethod
    def replay(self, message_id: str, after_seq: int = 0) -> list[Delivery]:
        """The message's stored chunks with ``seq > after_seq``, then its terminal event if any."""

    @abstractmethod
    def subscribe(self, conversation_id: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for each live event of the conversation until the returned function
        is called. Live delivery is active when this returns. ``listener`` must not block."""

    @abstractmethod
    def request_cancel(self, message_id: str) -> None:
        """Ask the job generating ``message_id`` to stop: its cancel flag is set (until the
        message ends, see :meth:`cancel_requested`) and every process's :meth:`on_cancel`
        listeners are told at once."""

    @abstractmethod
    def cancel_requested(self, message_id: str) -> bool:
        """Whether cancellation of ``message_id`` was asked for (read when a generation starts,
        and while :meth:`on_cancel` cannot deliver live)."""

    @abstractmethod
    def on_cancel(self, listener: CancelListener) -> Callable[[], bool]:
        """Call ``listener`` in this process whenever a cancel is requested (from any process).
        Returns a function telling whether such calls are currently delivered live; while it
        returns False the caller must poll :meth:`cancel_requested` instead."""


def chunks_after(deliveries: list[Delivery], seq: int) -> list[Delivery]:
    """Chunks past ``seq`` plus every non-chunk event, in stream order."""
    return [d for d in deliveries if d.kind != events.CHUNK or d.seq > seq]


def init_bus(app: Flask) -> None:
    """Redis Streams when ``REDIS_URL`` is set, else the in-memory bus of embedded mode."""
    from bestchat.redis_client import get_redis

    config = app.config
    client = get_redis(app)
    if client is not None:
        from bestchat.streaming.redis_bus import RedisBus

        bus: StreamBus = RedisBus(client, maxlen=config["STREAM_MAXLEN"], ttl=config["STREAM_TTL"])
    else:
        from bestchat.streaming.memory_bus import MemoryBus

        bus = MemoryBus(maxlen=config["STREAM_MAXLEN"], ttl=config["STREAM_TTL"])
    app.extensions["bestchat_bus"] = bus


def get_bus(app: Flask | None = None) -> StreamBus:
    return (app or current_app).extensions["bestchat_bus"]
