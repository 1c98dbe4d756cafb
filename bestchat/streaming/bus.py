"""The stream bus interface, the unit it delivers, and the one place an implementation is chosen.

A bus does two things. It keeps each assistant message's events in a replayable, capped
*stream* (chunks with their ``seq``, then one terminal event), and it delivers every event
live to whoever in this process follows the message's *conversation*. Publishers (the
generation job, the reaper, the conversation service) call :meth:`StreamBus.append` or
:meth:`StreamBus.broadcast`; readers (WebSocket and SSE handlers) go through
:class:`bestchat.streaming.subscriber.Subscriber`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

from flask import Flask, current_app

from bestchat.streaming import events


class BusUnavailable(Exception):
    """The bus cannot deliver live events right now (Redis unreachable)."""


@dataclass(frozen=True)
class Delivery:
    """One event as delivered: parsed for routing, and its JSON text, sent to clients verbatim.

    ``origin`` names the client that caused it (typing), so that client can skip its own.
    """

    event: dict[str, Any]
    text: str
    origin: str | None = None

    @classmethod
    def of(cls, event: dict[str, Any], origin: str | None = None) -> Delivery:
        return cls(event, json.dumps(event, separators=(",", ":")), origin)

    @property
    def message_id(self) -> str | None:
        return self.event.get("message_id") or (self.event.get("message") or {}).get("id")


# Delivered to listeners after the bus lost live events (a Redis reconnect): resume from the stream.
RESYNC = Delivery({"type": "bus.resync"}, "")

Listener = Callable[[Delivery], None]


class StreamBus(ABC):
    """Streams per message, live delivery per conversation, and cancellation flags."""

    @abstractmethod
    def append(self, conversation_id: str, message_id: str, event: dict[str, Any], *,
               final: bool = False) -> bool:
        """Add ``event`` to the message's stream and deliver it live. ``final`` marks the
        terminal event: the stream then expires after the configured TTL.

        Returns whether a cancellation of the message has been requested, read in the same
        round trip, so a generation notices a cancel within one chunk at no extra cost."""

    @abstractmethod
    def broadcast(self, conversation_id: str, event: dict[str, Any], *,
                  origin: str | None = None) -> None:
        """Deliver ``event`` live to the conversation's followers without storing it."""

    @abstractmethod
    def replay(self, message_id: str, after_seq: int = 0) -> list[Delivery]:
        """The message's stored chunks with ``seq > after_seq``, then its terminal event if any."""

    @abstractmethod
    def subscribe(self, conversation_id: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for each live event of the conversation until the returned function
        is called. Live delivery is active when this returns. ``listener`` must not block."""

    @abstractmethod
    def request_cancel(self, message_id: str) -> None:
        """Ask the job generating ``message_id`` to stop (it checks between chunks)."""

    @abstractmethod
    def cancel_requested(self, message_id: str) -> bool:
        """Whether cancellation of ``message_id`` was asked for."""


def chunks_after(deliveries: list[Delivery], seq: int) -> list[Delivery]:
    """Chunks past ``seq`` plus every non-chunk event, in stream order."""
    return [d for d in deliveries if d.event.get("type") != events.CHUNK or d.event["seq"] > seq]


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
