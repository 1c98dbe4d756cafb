"""One client connection's view of the bus: in order, each chunk exactly once.

A :class:`Subscriber` follows conversations (live events) and replays message streams from a
``seq`` (resume). Everything a client will receive goes through one queue, consumed by one
greenlet, so frames keep their order. While a replay is being read, live events are held
back and queued after it; the consumer then drops chunks at or below the last ``seq`` already
sent for their message (and repeated terminal events), which makes replay + live exactly-once.
The consumer takes frames one by one (:meth:`Subscriber.next`) or, to write what arrived
together in one write, all those already queued (:meth:`Subscriber.next_batch`); both run the
same de-duplication, on the fields the bus routes by (never by parsing the JSON).

What it remembers per message is dropped at the message's terminal event, except that the
message ended (the last :data:`FINISHED_KEPT` of them): a socket that stays open for thousands
of answers holds no more than that.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable

from gevent.queue import Empty, Queue

from bestchat.streaming import events
from bestchat.streaming.bus import RESYNC, Delivery, StreamBus

# Ended messages remembered per connection (their late duplicates are dropped); older ones are
# forgotten: nothing of a message arrives thousands of answers after its end.
FINISHED_KEPT = 1024


@dataclass(frozen=True)
class _Reset:
    """Queued before a replay: ``message_id`` counts as sent up to ``seq``, unless this
    connection already sent some of it (then it continues from there: no repeats, no reordering)."""
    message_id: str
    seq: int


class Subscriber:
    def __init__(self, bus: StreamBus):
        self.bus = bus
        self.id = uuid.uuid4().hex
        self._queue: Queue = Queue()
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._sent_seq: dict[str, int] = {}
        self._finished: dict[str, None] = {}  # (insertion-ordered: the oldest first)
        self._conversation_of: dict[str, str] = {}
        self._holding = 0
        self._held: list[Delivery] = []
        # Tool events already sent (their JSON bytes): one that comes from a replay and live too is
        # sent once. Insertion-ordered, the oldest dropped past FINISHED_KEPT.
        self._tool_events: dict[bytes, None] = {}

    def follow(self, conversation_id: str) -> None:
        """Receive the conversation's live events (idempotent)."""
        if conversation_id not in self._unsubscribe:
            self._unsubscribe[conversation_id] = self.bus.subscribe(conversation_id, self._on_delivery)

    def resume(self, conversation_id: str, message_id: str, after_seq: int,
               final: dict[str, Any] | None = None, *, live: bool = True) -> None:
        """Follow the conversation (unless not ``live``) and replay ``message_id`` from
        ``after_seq + 1``.

        ``final`` is the message's terminal event when it has ended: sent after the replay if
        the stream no longer holds one (it expired), so the client is never left waiting.
        """
        self._holding += 1
        try:
            if live:
                self.follow(conversation_id)
            replay = self.bus.replay(message_id, after_seq)
            self._conversation_of[message_id] = conversation_id
            self._queue.put(_Reset(message_id, after_seq))
            for delivery in replay:
                self._queue.put(delivery)
            if final is not None and not any(d.kind in events.TERMINAL for d in replay):
                self._queue.put(Delivery.of(final))
        finally:
            self._release()

    def _release(self) -> None:
        """End one hold; the last queues the live events held back meanwhile."""
        self._holding -= 1
        if not self._holding:
            held, self._held = self._held, []
            for delivery in held:
                self._queue.put(delivery)

    def send(self, event: dict[str, Any]) -> None:
        """Queue a frame for this client only (pong, error), in order with the rest."""
        self._queue.put(Delivery.of(event))

    def next(self, timeout: float | None = None) -> Delivery | None:
        """The next frame to send, or None after ``timeout`` seconds without one."""
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except Empty:
                return None
            delivery = self._take(item)
            if delivery is not None:
                return delivery

    def next_batch(self, timeout: float | None = None, limit: int = 256) -> list[Delivery]:
        """The next frame to send and every one already queued behind it (at most ``limit``),
        in order: what arrived together goes out in one write. Empty after ``timeout`` seconds
        without a frame; it never waits for a second one."""
        first = self.next(timeout)
        if first is None:
            return []
        batch = [first]
        queue = self._queue
        while len(batch) < limit and queue.qsize():
            delivery = self._take(queue.get_nowait())
            if delivery is not None:
                batch.append(delivery)
        return batch

    def _take(self, item: Any) -> Delivery | None:
        """``item`` of the queue as a frame to send, or None (a reset, a resync, a repeat)."""
        if isinstance(item, _Reset):
            if item.message_id not in self._finished:
                self._sent_seq.setdefault(item.message_id, item.seq)
            return None
        if item is RESYNC:
            self._resync()
            return None
        return item if self._is_new(item) else None

    def close(self) -> None:
        for unsubscribe in self._unsubscribe.values():
            unsubscribe()
        self._unsubscribe.clear()

    def _on_delivery(self, delivery: Delivery) -> None:
        if delivery.origin is not None and delivery.origin == self.id:
            return
        if self._holding:
            self._held.append(delivery)
        else:
            self._queue.put(delivery)

    def _is_new(self, delivery: Delivery) -> bool:
        kind = delivery.kind
        if kind == events.CHUNK:
            message_id = delivery.message_id
            if message_id in self._finished or delivery.seq <= self._sent_seq.get(message_id, 0):
                return False
            self._sent_seq[message_id] = delivery.seq
            if message_id not in self._conversation_of:
                self._conversation_of[message_id] = delivery.event["conversation_id"]
        elif kind in events.TOOL_EVENTS:
            if delivery.raw in self._tool_events:
                return False
            self._tool_events[delivery.raw] = None
            if len(self._tool_events) > FINISHED_KEPT:
                del self._tool_events[next(iter(self._tool_events))]
        elif kind in events.TERMINAL:
            message_id = delivery.message_id
            if message_id in self._finished:
                return False
            self._finished[message_id] = None
            if len(self._finished) > FINISHED_KEPT:
                del self._finished[next(iter(self._finished))]
            self._sent_seq.pop(message_id, None)
            self._conversation_of.pop(message_id, None)
        return True

    def _resync(self) -> None:
        """Live events may have been lost: replay every unfinished message from where it is.

        What is queued already (live events that came in behind the resynchronisation) goes
        out after the replays, as do live events arriving while they are read: a replayed
        chunk never follows a later live one (which would make it look like a repeat)."""
        queued = []
        while self._queue.qsize():
            queued.append(self._queue.get_nowait())
        self._holding += 1
        try:
            for message_id, seq in list(self._sent_seq.items()):
                conversation_id = self._conversation_of.get(message_id)
                if message_id not in self._finished and conversation_id:
                    self.resume(conversation_id, message_id, seq)
        finally:
            for item in queued:
                self._queue.put(item)
            self._release()
