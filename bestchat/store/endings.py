"""Ending an assistant message, in one place for every path that can end one.

The worker (complete, failed, cancelled), a cancel before the job starts, and the reaper
(interrupted) all call :func:`finish`: a conditional UPDATE (so exactly one of them wins; run
once more on a fresh connection if the database had dropped the one it got), the commit, then
the terminal event on the message's stream. :func:`interrupt` first rebuilds the partial
content from the stream, since the row may lag behind it by up to a second. Both dialects'
stores end messages through these.

A message must never stay ``streaming`` because its final save fails: when the database
refuses a value of it (:data:`bestchat.text.VALUE_REFUSED`; text from providers is made
storable before it gets here, so this is the last line of defence), :func:`finish` ends it
without its new content and without ``on_finished``: the content saved while it streamed is
kept, and an answer that was to be ``complete`` ends ``failed`` (``unstorable``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Callable, Iterable

from sqlalchemy import update

from bestchat.database import once_more_if_dropped
from bestchat.extensions import db
from bestchat.models import Message
from bestchat.models.base import utcnow
from bestchat.models.message_status import ACTIVE, MessageStatus
from bestchat.streaming import events, get_bus
from bestchat.text import VALUE_REFUSED, storable

log = logging.getLogger(__name__)

INTERRUPTED_ERROR = "the generation was interrupted (its worker stopped); the partial answer is kept"
UNSTORABLE_ERROR = "the answer could not be stored; the text saved while it streamed is kept"


def finish(message_id: uuid.UUID, status: MessageStatus, *, from_statuses: Iterable[MessageStatus] = ACTIVE,
           error: str | None = None, error_code: str | None = None,
           usage: dict[str, int] | None = None, finish_reason: str | None = None,
           on_finished: Callable[[Message], None] | None = None,
           stale_before: datetime | None = None,
           **fields: Any) -> Message | None:
    """Move the message to ``status`` if it is still in ``from_statuses`` (and, with
    ``stale_before``, was last updated before it); None if it was not.

    ``fields`` are further columns to set (content, last_seq, provider, ...). ``on_finished``
    runs before the commit, with the updated message (usage rows, after_generate filters).
    ``usage`` and ``finish_reason`` go into the terminal event only. When the database refuses
    a value, the message ends without ``fields`` (see the module docstring).
    """
    from_statuses = tuple(from_statuses)
    try:
        return _finish(message_id, status, from_statuses, error, error_code, usage, finish_reason,
                       on_finished, stale_before, fields)
    except VALUE_REFUSED:
        db.session.rollback()
        log.exception("the database refused the final save of message %s; ending it without "
                      "its new content", message_id)
    if status == MessageStatus.COMPLETE:
        status, error, error_code = MessageStatus.FAILED, UNSTORABLE_ERROR, "unstorable"
    return _finish(message_id, status, from_statuses, error and storable(error), error_code,
                   usage, finish_reason, None, stale_before, {})


def _finish(message_id: uuid.UUID, status: MessageStatus, from_statuses: tuple[MessageStatus, ...],
            error: str | None, error_code: str | None, usage: dict[str, int] | None,
            finish_reason: str | None, on_finished: Callable[[Message], None] | None,
            stale_before: datetime | None, fields: dict[str, Any]) -> Message | None:
    """:func:`finish`, once: the conditional UPDATE, ``on_finished``, the commit, the event."""
    condition = [Message.id == message_id, Message.status.in_(from_statuses)]
    if stale_before is not None:
        condition.append(Message.updated_at < stale_before)
    statement = (update(Message).where(*condition)
                 .values(status=str(status), error=error, error_code=error_code, updated_at=utcnow(), **fields)
                 .returning(Message))  # the updated row, without another SELECT
    message = once_more_if_dropped(lambda: db.session.scalars(
        statement, execution_options={"populate_existing": True, "synchronize_session": False}).first())
    if message is None:
        db.session.rollback()
        return None
    if on_finished is not None:
        on_finished(message)
    db.session.flush()
    # what the bus needs, before the commit expires the row (reading it after would reload it)
    event = events.terminal(message, usage, finish_reason)
    stream = (str(message.conversation_id), str(message.id))
    db.session.commit()
    get_bus().append_final(*stream, event)
    return message


def interrupt(message: Message, stale_before: datetime | None = None) -> Message | None:
    """End a message whose job died: partial content as far as the stream got, ``interrupted``.

    With ``stale_before``, only if its heartbeat is older than that (a live job keeps it)."""
    content, last_seq = message.content or "", message.last_seq
    for delivery in get_bus().replay(str(message.id), last_seq):
        event = delivery.event
        if event.get("type") == events.CHUNK and event["seq"] == last_seq + 1:
            content += event["delta"]
            last_seq += 1
    return finish(message.id, MessageStatus.INTERRUPTED, error=INTERRUPTED_ERROR, error_code="interrupted",
                  stale_before=stale_before, content=storable(content), last_seq=last_seq)
