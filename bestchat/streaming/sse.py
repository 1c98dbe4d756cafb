"""Server-Sent Events: the framing, the keep-alive, and the writer of one followed answer.

REST's ``/api/v1/messages/<id>/stream`` and ``/v1/chat/completions`` with ``stream`` both
write an answer with :func:`answer_stream`; each formats the answer's events its own way
(BestChat's events verbatim, or OpenAI's ``chat.completion.chunk`` objects). An idle stream
gets a comment line every :data:`KEEPALIVE_SECONDS`, so proxies and clients do not time it out.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from bestchat.streaming import events
from bestchat.streaming.bus import Delivery
from bestchat.streaming.subscriber import Subscriber

# Seconds without an event after which an idle stream gets a keep-alive comment line.
KEEPALIVE_SECONDS = 15
KEEPALIVE = ": keep-alive\n\n"
# Headers of every event stream: never cached, never buffered by a proxy.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(data: str, *, event: str | None = None, id: int | None = None) -> str:
    """One SSE event: ``id:`` and ``event:`` lines when given, then the ``data:`` line.
    (``data`` is one line: JSON text, or a marker such as ``[DONE]``.)"""
    head = f"id: {id}\n" if id is not None else ""
    if event is not None:
        head += f"event: {event}\n"
    return f"{head}data: {data}\n\n"


def retry(milliseconds: int) -> str:
    """How long a client waits before reconnecting after the connection drops."""
    return f"retry: {milliseconds}\n\n"


def answer_stream(subscriber: Subscriber, message_id: str, frames: Callable[[Delivery], Iterable[str]], *,
                  first: Iterable[str] = (), on_abandon: Callable[[], None] | None = None) -> Iterator[str]:
    """The SSE text of one answer followed by ``subscriber`` (:func:`bestchat.streaming.follow.follow_answer`):
    ``first``, then ``frames(delivery)`` for each delivery of ``message_id`` up to and including
    its terminal event, with :data:`KEEPALIVE` after each :data:`KEEPALIVE_SECONDS` without one.

    The subscriber is closed when the stream ends; ``on_abandon`` runs when the client goes
    away before the terminal event (the generator is closed early).
    """
    ended = False
    try:
        yield from first
        while not ended:
            delivery = subscriber.next(timeout=KEEPALIVE_SECONDS)
            if delivery is None:
                yield KEEPALIVE
            elif delivery.message_id == message_id:
                ended = delivery.kind in events.TERMINAL
                yield from frames(delivery)
    finally:
        subscriber.close()
        if not ended and on_abandon is not None:
            on_abandon()
