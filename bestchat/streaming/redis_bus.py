"""The production bus: one Redis Stream per assistant message, pub/sub for live delivery.

Publishing an event is one transaction: ``XADD`` to ``bc:stream:<message>`` (approximately
capped at ``maxlen``), ``EXPIRE`` (``ttl`` once the terminal event is in, a day before that
so an orphan cannot stay forever) and ``PUBLISH`` to ``bc:conv:<conversation>``, plus reading the message's cancel flag (so the
generation learns of a cancel in the same round trip). Because the
stream write and the publish are atomic, a reader that subscribes first and then replays the
stream misses nothing.

Each process has ONE reader greenlet holding ONE pub/sub connection (pattern
``bc:conv:*``), started on the first subscription and fanning out to this process's
listeners by a dict lookup on the channel name; 1000 sockets cost no extra Redis connection.
Every web process receives every conversation's events and drops those nobody local follows;
switching to per-conversation SUBSCRIBE would only change this module. The reader reconnects
with backoff and then tells listeners to resynchronise from the streams (:data:`RESYNC`).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any, Callable

import gevent
import redis
from gevent.event import Event

from bestchat.streaming.bus import RESYNC, BusUnavailable, Delivery, Listener, StreamBus, chunks_after

log = logging.getLogger(__name__)

PREFIX = "bc:"
STREAM = PREFIX + "stream:"
CHANNEL = PREFIX + "conv:"
CANCEL = PREFIX + "cancel:"
ORPHAN_TTL = 86400
CANCEL_TTL = 3600
READY_TIMEOUT = 5.0
MAX_BACKOFF = 5.0


class RedisBus(StreamBus):
    def __init__(self, client: redis.Redis, *, maxlen: int, ttl: int):
        self.redis = client
        self.maxlen = maxlen
        self.ttl = ttl
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._reader: gevent.Greenlet | None = None
        self._ready = Event()

    # ---- publishing ---------------------------------------------------------------------

    def append(self, conversation_id: str, message_id: str, event: dict[str, Any], *,
               final: bool = False) -> bool:
        text = _dumps(event)
        key = STREAM + message_id
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(key, {"e": text}, maxlen=self.maxlen, approximate=True)
        pipe.expire(key, self.ttl if final else ORPHAN_TTL)
        pipe.publish(CHANNEL + conversation_id, "- " + text)
        if final:
            pipe.delete(CANCEL + message_id)
        else:
            pipe.exists(CANCEL + message_id)
        results = pipe.execute()
        return not final and bool(results[-1])

    def broadcast(self, conversation_id: str, event: dict[str, Any], *,
                  origin: str | None = None) -> None:
        self.redis.publish(CHANNEL + conversation_id, f"{origin or '-'} {_dumps(event)}")

    def replay(self, message_id: str, after_seq: int = 0) -> list[Delivery]:
        entries = self.redis.xrange(STREAM + message_id)
        return chunks_after([Delivery(json.loads(f["e"]), f["e"]) for _, f in entries], after_seq)

    def request_cancel(self, message_id: str) -> None:
        self.redis.set(CANCEL + message_id, "1", ex=CANCEL_TTL)

    def cancel_requested(self, message_id: str) -> bool:
        return bool(self.redis.exists(CANCEL + message_id))

    # ---- live delivery ------------------------------------------------------------------

    def subscribe(self, conversation_id: str, listener: Listener) -> Callable[[], None]:
        channel = CHANNEL + conversation_id
        self._listeners[channel].add(listener)
        if self._reader is None or self._reader.dead:
            self._reader = gevent.spawn(self._read_forever)
        if not self._ready.wait(READY_TIMEOUT):
            self._listeners[channel].discard(listener)
            raise BusUnavailable("live events are unavailable (Redis unreachable)")

        def unsubscribe() -> None:
            listeners = self._listeners.get(channel)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[channel]

        return unsubscribe

    def _read_forever(self) -> None:
        backoff = 0.1
        connected_before = False
        while True:
            pubsub = self.redis.pubsub()
            try:
                pubsub.psubscribe(CHANNEL + "*")
                while True:
                    message = pubsub.get_message(timeout=30)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self._ready.set()
                        backoff = 0.1
                        if connected_before:
                            self._fan_out_all(RESYNC)
                        connected_before = True
                    elif message["type"] == "pmessage":
                        self._fan_out(message["channel"], message["data"])
            except Exception as error:  # noqa: BLE001 - keep reading whatever happens
                self._ready.clear()
                log.warning("stream bus reader lost Redis (%s); retrying in %.1fs",
                            type(error).__name__, backoff)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass

    def _fan_out(self, channel: str, data: str) -> None:
        listeners = self._listeners.get(channel)
        if not listeners:
            return
        origin, _, text = data.partition(" ")
        delivery = Delivery(json.loads(text), text, None if origin == "-" else origin)
        for listener in list(listeners):
            _call(listener, delivery)

    def _fan_out_all(self, delivery: Delivery) -> None:
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                _call(listener, delivery)


def _call(listener: Listener, delivery: Delivery) -> None:
    try:
        listener(delivery)
    except Exception:  # noqa: BLE001 - one broken listener must not stop the others
        log.exception("stream listener failed")


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))
