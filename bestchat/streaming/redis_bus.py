"""The production bus: one Redis Stream per assistant message, pub/sub for live delivery.

Appending an event to a message's stream is ``XADD`` to ``bc:stream:<message>``
(approximately capped at ``maxlen``) then ``PUBLISH`` to ``bc:conv:<conversation>`` on the
same connection, so the stream always has an event before anyone is told of it: a reader that
subscribes first and then replays the stream misses nothing. The stream's ``EXPIRE`` is set
with its first chunk (a day, so an orphan cannot stay forever) and with the terminal event
(``ttl``). A batch of chunks (:meth:`RedisBus.append_many`, the frame writer of each worker
process) is one pipelined round trip, whatever its size. Every ``PUBLISH`` on a
conversation's channel is built here in one place (:func:`publish_command`), which the Celery
dispatcher also uses to send an answer's announcement with its job
(:mod:`bestchat.dispatch.celery`).

Cancellation: :meth:`RedisBus.request_cancel` sets ``bc:cancel:<message>`` and publishes the
id on ``bc:cancels``; each process that runs generations keeps ONE more pub/sub connection
on that channel (:meth:`RedisBus.on_cancel`), so a generation learns of its cancel at once
without any per-chunk Redis work. The flag is read when a generation starts and while that
connection is down; the terminal event deletes it.

Each process has ONE reader greenlet holding ONE pub/sub connection, started on the first
subscription and fanning out to this process's listeners by a dict lookup on the channel
name; 1000 sockets cost no extra Redis connection. It is subscribed (``SUBSCRIBE``) to the
channels of the conversations its local listeners follow, and to no other: a web process
receives only its own clients' events, so more web processes do not each relay all the
traffic. :meth:`RedisBus.subscribe` returns once Redis confirmed the channel's subscription,
so a client that subscribes and then sends misses nothing; the last listener of a channel
unsubscribes it. The reader reconnects with backoff, subscribes again to every followed
channel, and then tells listeners to resynchronise from the streams (:data:`RESYNC`).

The pub/sub connections are read raw (:meth:`RedisBus._listen_forever`): a connection of their
own (RESP2, as :data:`bestchat.redis_client.PROTOCOL`), its socket's bytes fed to a
``hiredis.Reader`` that yields each message as bytes, and each message turned into one
:class:`Delivery` by its wire header (:meth:`Delivery.from_raw`), its JSON left as bytes for
the writers to forward (encode once: :mod:`bestchat.streaming.websocket`,
:mod:`bestchat.streaming.sse`). Nothing is decoded or parsed per subscriber.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections import defaultdict
from typing import Any, Callable, Iterator

import gevent
import hiredis
import redis
from gevent import monkey
from gevent.event import Event

from bestchat.redis_client import exchange, run_commands
from bestchat.streaming.bus import (
    RESYNC, BusUnavailable, CancelListener, Delivery, Listener, StreamBus, chunks_after,
)

log = logging.getLogger(__name__)

PREFIX = "bc:"
STREAM = PREFIX + "stream:"
CHANNEL = PREFIX + "conv:"
CANCEL = PREFIX + "cancel:"
CANCELS_CHANNEL = PREFIX + "cancels"
READER_CHANNEL = PREFIX + "reader"  # nobody publishes on it: its confirmation means connected
READER_NAME = "bestchat-bus-reader"  # the pub/sub connections' client names
CANCEL_LISTENER_NAME = "bestchat-cancel-listener"
ORPHAN_TTL = 86400
CANCEL_TTL = 3600
READY_TIMEOUT = 5.0
MAX_BACKOFF = 5.0
# Seconds a pub/sub connection may stay silent before it is asked for a PING; as long again
# without an answer and it counts as lost.
IDLE_PING = 30.0
READ_SIZE = 65536


def publish_command(conversation_id: str, event: dict[str, Any], origin: str | None = None) -> tuple[str, str, str]:
    """The Redis command that delivers ``event`` live to the conversation's followers."""
    return _publish(conversation_id, Delivery.of(event, origin))


def _publish(conversation_id: str, delivery: Delivery) -> tuple[str, str, str]:
    return ("PUBLISH", CHANNEL + conversation_id, delivery.wire())


class RedisBus(StreamBus):
    def __init__(self, client: redis.Redis, *, maxlen: int, ttl: int):
        self.redis = client
        self.maxlen = maxlen
        self.ttl = ttl
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._reader: gevent.Greenlet | None = None
        self._subscriber: redis.connection.AbstractConnection | None = None  # the reader's, while connected
        self._ready = Event()
        self._confirmed: dict[str, Event] = {}  # channel -> set once the reader is subscribed
        self._cancel_listeners: list[CancelListener] = []
        self._cancel_reader: gevent.Greenlet | None = None
        self._cancels_live = False
        self._writer_connection: redis.connection.Connection | None = None

    # ---- publishing ---------------------------------------------------------------------

    def append_final(self, conversation_id: str, message_id: str, event: dict[str, Any]) -> None:
        delivery = Delivery.of(event)
        key = STREAM + message_id
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(key, {"e": delivery.text}, maxlen=self.maxlen, approximate=True)
        pipe.expire(key, self.ttl)
        pipe.execute_command(*_publish(conversation_id, delivery))
        pipe.delete(CANCEL + message_id)
        pipe.execute()

    def append_many(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        """One write and one read for the whole batch, on a connection of its own, without
        redis-py's pipeline object (which costs more than the round trip). Only one greenlet
        per process (the frame writer) calls this. After a failure the batch is retried whole
        by the caller; chunks written twice are dropped by ``seq`` downstream."""
        maxlen = str(self.maxlen)
        commands: list[tuple[str, ...]] = []
        for conversation_id, message_id, event in items:
            delivery = Delivery.of(event)
            key = STREAM + message_id
            commands.append(("XADD", key, "MAXLEN", "~", maxlen, "*", "e", delivery.text))
            if delivery.seq == 1:
                commands.append(("EXPIRE", key, str(ORPHAN_TTL)))
            commands.append(_publish(conversation_id, delivery))
        connection = self._writer_connection
        if connection is None:
            connection = self._writer_connection = self.redis.connection_pool.make_connection()
        try:
            replies = exchange(connection, commands)
        except BaseException:
            self._writer_connection = None
            raise
        for reply in replies:
            if isinstance(reply, redis.ResponseError):  # a command's own error: not retried
                log.error("stream bus write failed: %s", reply)

    def broadcast(self, conversation_id: str, event: dict[str, Any], *,
                  origin: str | None = None) -> None:
        self.redis.execute_command(*publish_command(conversation_id, event, origin))

    def broadcast_many(self, conversation_id: str, events_: list[dict[str, Any]]) -> None:
        run_commands(self.redis, [publish_command(conversation_id, event) for event in events_])

    def replay(self, message_id: str, after_seq: int = 0) -> list[Delivery]:
        entries = self.redis.xrange(STREAM + message_id)
        return chunks_after([Delivery(json.loads(f["e"]), f["e"]) for _, f in entries], after_seq)

    def request_cancel(self, message_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(CANCEL + message_id, "1", ex=CANCEL_TTL)
        pipe.publish(CANCELS_CHANNEL, message_id)
        pipe.execute()

    def on_cancel(self, listener: CancelListener) -> Callable[[], bool]:
        self._cancel_listeners.append(listener)
        if not monkey.is_module_patched("socket"):
            # A blocking pub/sub read would stall every greenlet of an unpatched process (a
            # test run, a script): the caller polls the flags instead.
            return lambda: False
        if self._cancel_reader is None or self._cancel_reader.dead:
            self._cancel_reader = gevent.spawn(self._read_cancels_forever)
        return lambda: self._cancels_live

    def _read_cancels_forever(self) -> None:
        def handle(reply: list[Any]) -> None:
            if reply[0] == b"subscribe":
                self._cancels_live = True
                self._tell_cancel(None)  # requests made while not subscribed
            elif reply[0] == b"message":
                self._tell_cancel(reply[2].decode())

        def lost() -> None:
            self._cancels_live = False

        self._listen_forever("cancel listener", lambda connection: connection.send_command(
            "SUBSCRIBE", CANCELS_CHANNEL), handle, lost, name=CANCEL_LISTENER_NAME)

    def _tell_cancel(self, message_id: str | None) -> None:
        for listener in list(self._cancel_listeners):
            try:
                listener(message_id)
            except Exception:  # noqa: BLE001
                log.exception("cancel listener failed")

    def cancel_requested(self, message_id: str) -> bool:
        return bool(self.redis.exists(CANCEL + message_id))

    # ---- live delivery ------------------------------------------------------------------

    def subscribe(self, conversation_id: str, listener: Listener) -> Callable[[], None]:
        """Deliver the conversation's events to ``listener``; returns once this process's
        reader is subscribed to the conversation's channel (nothing published after that is
        missed)."""
        channel = CHANNEL + conversation_id
        self._listeners[channel].add(listener)
        try:
            self._wait_subscribed(channel)
        except BaseException:
            self._drop(channel, listener)
            raise
        return lambda: self._drop(channel, listener)

    def _wait_subscribed(self, channel: str) -> None:
        if self._reader is None or self._reader.dead:
            self._reader = gevent.spawn(self._read_forever)
        deadline = time.monotonic() + READY_TIMEOUT
        if not self._ready.wait(READY_TIMEOUT):
            raise BusUnavailable("live events are unavailable (Redis unreachable)")
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            confirmed = self._confirmed[channel] = Event()
            try:
                self._subscriber.send_command("SUBSCRIBE", channel)
            except Exception as error:  # the reader reconnects and subscribes it again
                log.warning("could not subscribe to %s (%s)", channel, type(error).__name__)
        if not confirmed.wait(max(0.0, deadline - time.monotonic())):
            raise BusUnavailable("live events are unavailable (Redis did not confirm the subscription)")

    def _drop(self, channel: str, listener: Listener) -> None:
        """Forget ``listener``; the last one of a channel unsubscribes the reader from it."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            return
        listeners.discard(listener)
        if listeners:
            return
        del self._listeners[channel]
        if self._confirmed.pop(channel, None) is not None and self._ready.is_set():
            try:
                self._subscriber.send_command("UNSUBSCRIBE", channel)
            except Exception:  # noqa: BLE001 - after a reconnect nobody re-subscribes it
                pass

    def _read_forever(self) -> None:
        """The process's one pub/sub connection: subscribed to ``READER_CHANNEL`` (whose
        confirmation means connected) and to every conversation a local listener follows;
        after a reconnect, to all of them again, then listeners are told to resynchronise."""
        connected_before = False

        def subscribe_all(connection: redis.connection.AbstractConnection) -> None:
            self._subscriber = connection
            channels = list(self._listeners)
            for channel in channels:
                self._confirmed.setdefault(channel, Event())
            connection.send_command("SUBSCRIBE", READER_CHANNEL, *channels)

        def handle(reply: list[Any]) -> None:
            nonlocal connected_before
            kind = reply[0]
            if kind == b"message":
                listeners = self._listeners.get(reply[1].decode())
                if listeners:
                    delivery = Delivery.from_raw(reply[2])
                    for listener in list(listeners):
                        _call(listener, delivery)
            elif kind == b"subscribe":
                channel = reply[1].decode()
                if channel == READER_CHANNEL:
                    self._ready.set()
                    if connected_before:
                        self._fan_out_all(RESYNC)
                    connected_before = True
                elif (confirmed := self._confirmed.get(channel)) is not None:
                    confirmed.set()

        def lost() -> None:
            self._subscriber = None
            self._ready.clear()
            for confirmed in self._confirmed.values():
                confirmed.clear()

        self._listen_forever("stream bus reader", subscribe_all, handle, lost, name=READER_NAME)

    def _listen_forever(self, what: str, subscribe: Callable[[Any], None],
                        handle: Callable[[list[Any]], None], lost: Callable[[], None], *,
                        name: str) -> None:
        """Hold one pub/sub connection, named ``name`` (``CLIENT LIST`` shows it): ``subscribe``
        on it, then ``handle`` every reply read off it; when Redis is lost, call ``lost`` and
        reconnect with backoff.

        The replies are read raw: the socket's bytes go straight into a ``hiredis.Reader``,
        which yields each pub/sub message as a list of bytes (``[b"message", channel, data]``)
        without redis-py's PubSub object, health checks or decoding; whatever one read brought
        (a batch of chunks published together) is handled before the next read."""
        backoff = 0.1
        while True:
            connection = self._pubsub_connection(name)
            try:
                connection.connect()
                replies = read_replies(connection)
                subscribe(connection)
                for reply in replies:
                    backoff = 0.1
                    if isinstance(reply, list):
                        handle(reply)
                    elif isinstance(reply, Exception):
                        log.error("%s: Redis refused a command: %s", what, reply)
            except Exception as error:  # noqa: BLE001 - keep reading whatever happens
                lost()
                log.warning("%s lost Redis (%s); retrying in %.1fs", what, type(error).__name__, backoff)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                try:
                    connection.disconnect()
                except Exception:  # noqa: BLE001
                    pass

    def _pubsub_connection(self, name: str) -> redis.connection.AbstractConnection:
        """A connection of its own (not the pool's: it only listens), with the pool's address
        and credentials, named ``name``, replies left as bytes, no health check of redis-py's
        (its PING would read the pub/sub stream: :func:`read_replies` pings itself)."""
        pool = self.redis.connection_pool
        return pool.connection_class(**{**pool.connection_kwargs, "client_name": name,
                                        "decode_responses": False, "health_check_interval": 0})

    def _fan_out_all(self, delivery: Delivery) -> None:
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                _call(listener, delivery)


def read_replies(connection: redis.connection.AbstractConnection) -> Iterator[Any]:
    """Every reply Redis sends on ``connection`` (connected, in pub/sub mode), as hiredis makes
    it from the socket's bytes: lists of bytes for pub/sub messages, an exception for an error.
    After :data:`IDLE_PING` silent seconds it sends a ``PING``; as long again without a byte and
    the connection counts as lost (``ConnectionError``), as it does when Redis closes it."""
    sock = connection._sock
    sock.settimeout(IDLE_PING)
    reader = hiredis.Reader()
    pinged = False
    while True:
        try:
            data = sock.recv(READ_SIZE)
        except socket.timeout:
            if pinged:
                raise ConnectionError("no answer to PING") from None
            connection.send_command("PING")
            pinged = True
            continue
        if not data:
            raise ConnectionError("closed by Redis")
        pinged = False
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            yield reply


def _call(listener: Listener, delivery: Delivery) -> None:
    try:
        listener(delivery)
    except Exception:  # noqa: BLE001 - one broken listener must not stop the others
        log.exception("stream listener failed")
