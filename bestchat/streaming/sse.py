"""Server-Sent Events: the framing, the keep-alive, and the writer of one followed answer.

REST's ``/api/v1/messages/<id>/stream`` and ``/v1/chat/completions`` with ``stream`` both
write an answer with :func:`answer_stream`; each formats the answer's events its own way
(BestChat's events verbatim, or OpenAI's ``chat.completion.chunk`` objects). An idle stream
gets a comment line every :data:`KEEPALIVE_SECONDS`, so proxies and clients do not time it out.

The writer yields bytes, and every event already queued when it wakes up goes out in one
piece (:meth:`Subscriber.next_batch`), as the WebSocket writer does: a batch of chunks that
arrived together costs one write, not one per event. Each event stays a complete SSE event
(``id:``/``event:``/``data:`` lines and a blank line), so a client parses the same events.
Formatters are free to build their bytes once per process for every follower
(:meth:`bestchat.streaming.bus.Delivery.encoded`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from bestchat.streaming import events
from bestchat.streaming.bus import Delivery
from bestchat.streaming.subscriber import Subscriber

# Seconds without an event after which an idle stream gets a keep-alive comment line.
KEEPALIVE_SECONDS = 15
KEEPALIVE = b": keep-alive\n\n"
# Headers of every event stream: never cached, never buffered by a proxy.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(data: str, *, event: str | None = None, id: int | None = None) -> str:
    """One SSE event: ``id:`` and ``event:`` lines when given, then the ``data:`` line.
    (``data`` is one line: JSON text, or a marker such as ``[DONE]``.)"""
    head = f"id: {id}\n" if id is not None else ""
    if event is not None:
        head += f"event: {event}\n"
    return f"{head}data: {data}\n\n"


def frame_bytes(data: bytes, *, event: str | None = None, id: int | None = None) -> bytes:
    """:func:`frame` of JSON that is already bytes (a delivery's :attr:`~Delivery.raw`)."""
    head = b"id: %d\n" % id if id is not None else b""
    if event is not None:
        head += b"event: %s\n" % event.encode()
    return b"%sdata: %s\n\n" % (head, data)


def retry(milliseconds: int) -> str:
    """How long a client waits before reconnecting after the connection drops."""
    return f"retry: {milliseconds}\n\n"


def answer_stream(subscriber: Subscriber, message_id: str,
                  frames: Callable[[Delivery], Iterable[bytes | str]], *,
                  first: Iterable[bytes | str] = (), on_abandon: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The SSE bytes of one answer followed by ``subscriber`` (:func:`bestchat.streaming.follow.follow_answer`):
    ``first``, then ``frames(delivery)`` for each delivery of ``message_id`` up to and including
    its terminal event, with :data:`KEEPALIVE` after each :data:`KEEPALIVE_SECONDS` without one.
    What ``frames`` gives for the deliveries queued together is yielded as one piece.

    The subscriber is closed when the stream ends; ``on_abandon`` runs when the client goes
    away before the terminal event (the generator is closed early).
    """
    ended = False
    try:
        opening = b"".join(_bytes(piece) for piece in first)
        if opening:
            yield opening
        while not ended:
            batch = subscriber.next_batch(timeout=KEEPALIVE_SECONDS)
            if not batch:
                yield KEEPALIVE
                continue
            out: list[bytes] = []
            for delivery in batch:
                if delivery.message_id == message_id:
                    out.extend(_bytes(piece) for piece in frames(delivery))
                    if delivery.kind in events.TERMINAL:
                        ended = True
                        break
            if out:
                yield b"".join(out)
    finally:
        subscriber.close()
        if not ended and on_abandon is not None:
            on_abandon()


def _bytes(piece: bytes | str) -> bytes:
    return piece if isinstance(piece, bytes) else piece.encode()
