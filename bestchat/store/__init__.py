"""The message store: every statement on the way from a send to a generation's end.

It stores an exchange (a send, an edit, a regenerate, a transcript: the new messages and the
answer after them, with the checks that decide whether they may be stored), claims an answer
for its generation job, and finishes or interrupts it. :func:`init_store` picks the
implementation once, at app start, from the database's dialect (as the stream bus is picked);
:func:`get_store` returns it:

- :class:`bestchat.store.postgresql.PostgreSQLStore`: an exchange is one statement (the read,
  the checks and the write together, atomic on its own), and so is a claim; both are prepared
  statements run on a pooled connection without the ORM session.
- :class:`bestchat.store.sqlite.SQLiteStore`: the read, then the write, in one transaction of
  the session (a local database: no round trips to save).

The rules (which error a failed check is, which parent, which model) are the caller's:
:class:`bestchat.services.conversations.ConversationManager` builds the :class:`Exchange` and
reads the :class:`Found` it gets back. Column orders live in :mod:`bestchat.store.columns`.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, NamedTuple

from flask import Flask, current_app

from bestchat.models import Conversation, Message
from bestchat.models.message_status import ACTIVE, MessageStatus
from bestchat.store import endings
from bestchat.store.claimed import Claimed

EXTENSION = "bestchat_store"


@dataclass
class Exchange:
    """New messages to store together, the answer last (``pending``: the store sets the status
    its admission gives). The first message follows the conversation's newest message when
    ``after_newest`` (the store sets its ``parent_id``), else the ``parent_id`` it has (None: a
    new root). Every other column is set by the caller (ids and timestamps included).

    ``conversation``, when given, is a new conversation stored with the messages (its checks
    are then moot). ``inherit_model``: an answer without a model gets the conversation's."""

    user_id: uuid.UUID
    messages: list[Message]
    after_newest: bool = False
    inherit_model: bool = True
    conversation: Conversation | None = None

    @property
    def answer(self) -> Message:
        return self.messages[-1]

    @property
    def conversation_id(self) -> uuid.UUID:
        return self.answer.conversation_id

    @property
    def now(self) -> datetime:
        """The conversation's new ``updated_at``: the first message's time."""
        return self.messages[0].created_at


class Found(NamedTuple):
    """What the store found while storing an exchange; nothing was stored unless ``stored``."""

    owner_id: uuid.UUID | None  # the conversation's owner (None: no such conversation)
    disabled: bool  # the owner's account is disabled
    parent_found: bool  # the given parent is a message of the conversation (or None was given)
    parent_id: uuid.UUID | None  # the first message's parent
    parent_status: str | None
    model: str | None  # the conversation's model
    updated_at: datetime | None  # the conversation's ``updated_at`` before the exchange
    stored: bool

    def allows(self, user_id: uuid.UUID) -> bool:
        """Whether the exchange may be stored: the user's conversation, an active account,
        the parent found and no answer running after it."""
        return (self.owner_id == user_id and not self.disabled and self.parent_found
                and self.parent_status not in ACTIVE)


class MessageStore(ABC):
    """The port: one implementation per database dialect."""

    @abstractmethod
    def add_exchange(self, exchange: Exchange, admitted: Callable[[], str]) -> Found:
        """Store ``exchange`` if :meth:`Found.allows` (checked with the read, atomically with
        the write), its answer with the status ``admitted()`` returns; ``admitted()`` is called
        only then, and when it raises (a refusal) nothing stays stored. The messages are
        updated in memory to what was stored (the first one's parent, the answer's model and
        status). Raises what the database raises; nothing is stored then."""

    @abstractmethod
    def claim(self, message_id: uuid.UUID) -> Claimed | None:
        """Claim the answer ``message_id`` for its generation (``pending``/``queued`` ->
        ``streaming``, committed) and read what the generation needs; None when it was not
        claimable (a redelivered job, a cancel before the start, a delete). No database
        connection is held when it returns."""

    def finish(self, message_id: uuid.UUID, status: MessageStatus, **options: Any) -> Message | None:
        """End the message (see :func:`bestchat.store.endings.finish`)."""
        return endings.finish(message_id, status, **options)

    def interrupt(self, message: Message, stale_before: datetime | None = None) -> Message | None:
        """End a message whose job died (see :func:`bestchat.store.endings.interrupt`)."""
        return endings.interrupt(message, stale_before=stale_before)


def init_store(app: Flask) -> None:
    """PostgreSQL's store on PostgreSQL, else SQLite's."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        from bestchat.store.postgresql import PostgreSQLStore

        store: MessageStore = PostgreSQLStore()
    else:
        from bestchat.store.sqlite import SQLiteStore

        store = SQLiteStore()
    app.extensions[EXTENSION] = store


def get_store(app: Flask | None = None) -> MessageStore:
    return (app or current_app).extensions[EXTENSION]


__all__ = ["Claimed", "Exchange", "Found", "MessageStore", "get_store", "init_store"]

