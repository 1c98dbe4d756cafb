"""The embedded-mode bus: streams and listeners in this process's memory.

Only correct within one process, which is why embedded mode serves from one process.
Listeners are called synchronously by the publisher; they only enqueue.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Callable

from bestchat.streaming.bus import CancelListener, Delivery, Listener, StreamBus, chunks_after

log = logging.getLogger(__name__)

CANCEL_TTL = 3600.0


class MemoryBus(StreamBus):
    def __init__(self, *, maxlen: int, ttl: float):
        self.maxlen = maxlen
        self.ttl = ttl
        self._streams: dict[str, list[Delivery]] = {}
        self._expires: dict[str, float] = {}
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._cancels: dict[str, float] = {}
        self._cancel_listeners: list[CancelListener] = []
        self._next_prune = 0.0

    def append_many(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        for conversation_id, message_id, event in items:
            self._append(conversation_id, message_id, Delivery.of(event))

    def append_final(self, conversation_id: str, message_id: str, event: dict[str, Any]) -> None:
        self._expires[message_id] = time.monotonic() + self.ttl
        self._cancels.pop(message_id, None)
        self._append(conversation_id, message_id, Delivery.of(event))

    def _append(self, conversation_id: str, message_id: str, delivery: Delivery) -> None:
        stream = self._streams.setdefault(message_id, [])
        stream.append(delivery)
        if len(stream) > self.maxlen:
            del stream[: len(stream) - self.maxlen]
        self._prune()
        self._deliver(conversation_id, delivery)

    def broadcast(self, conversation_id: str, event: dict[str, Any], *,
                  origin: str | None = None) -> None:
        self._deliver(conversation_id, Delivery.of(event, origin))

    def replay(self, message_id: str, after_seq: int = 0) -> list[Delivery]:
        return chunks_after(list(self._streams.get(message_id, ())), after_seq)

    def subscribe(self, conversation_id: str, listener: Listener) -> Callable[[], None]:
        self._listeners[conversation_id].add(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(conversation_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[conversation_id]

        return unsubscribe

    def request_cancel(self, message_id: str) -> None:
        self._cancels[message_id] = time.monotonic() + CANCEL_TTL
        for listener in list(self._cancel_listeners):
            try:
                listener(message_id)
            except Exception:  # noqa: BLE001
                log.exception("cancel listener failed")

    def on_cancel(self, listener: CancelListener) -> Callable[[], bool]:
        self._cancel_listeners.append(listener)
        return lambda: True

    def cancel_requested(self, message_id: str) -> bool:
        return message_id in self._cancels

    def _deliver(self, conversation_id: str, delivery: Delivery) -> None:
        for listener in list(self._listeners.get(conversation_id, ())):
            try:
                listener(delivery)
            except Exception:  # noqa: BLE001 - one broken listener must not stop the others
                log.exception("stream listener failed")

    def _prune(self) -> None:
        """Drop expired streams and cancel flags, at most once a second."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + 1.0
        for message_id, deadline in list(self._expires.items()):
            if deadline <= now:
                self._streams.pop(message_id, None)
                del self._expires[message_id]
        for message_id, deadline in list(self._cancels.items()):
            if deadline <= now:
                del self._cancels[message_id]
