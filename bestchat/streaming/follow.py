"""Following one answer: what REST's SSE stream, ``/v1`` and the WebSocket's ``subscribe``
share to send a message's events from a ``seq`` on.

:func:`follow_answer` replays the message's stream after ``after_seq`` and, while the answer
runs, delivers its conversation's live events too (:class:`Subscriber`: each chunk exactly
once). An answer that has ended gets its terminal event built from the database when its
stream no longer holds one (the stream expired), so a client is never left waiting.
"""

from __future__ import annotations

from bestchat.extensions import db
from bestchat.models import Message
from bestchat.models.message_status import FINAL
from bestchat.streaming import events, get_bus
from bestchat.streaming.subscriber import Subscriber


def follow_answer(message: Message, after_seq: int = 0, *, subscriber: Subscriber | None = None,
                  live: bool | None = None) -> Subscriber:
    """Queue ``message``'s events after ``after_seq`` on ``subscriber`` (a new one on the app's
    bus when None) and return it.

    ``live``: also follow the conversation's live events; by default only while the answer
    has not ended (a finished answer is all in its replay). The session's transaction ends
    first: a follower may wait for minutes, holding no database connection.
    """
    final = events.terminal(message) if message.status in FINAL else None
    conversation_id, message_id = str(message.conversation_id), str(message.id)
    db.session.commit()
    subscriber = subscriber or Subscriber(get_bus())
    subscriber.resume(conversation_id, message_id, after_seq, final,
                      live=final is None if live is None else live)
    return subscriber
