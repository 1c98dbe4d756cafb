"""The message store on SQLite, a local database with no round trips to save: an exchange is
its read (the conversation, its owner's state and the parent), the checks, the admission's
answer, then its write, in one transaction of the session; a claim is its UPDATE, then the
reads of the conversation, its messages and the user's provider configs, on the session's
connection in autocommit mode."""

from __future__ import annotations

import uuid
from typing import Any, Callable

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.orm import aliased

from bestchat.extensions import db
from bestchat.models import Conversation, Message, User
from bestchat.models.base import utcnow
from bestchat.models.message_status import CLAIMABLE, MessageStatus
from bestchat.providers.registry import ENABLED_CONFIG_VALUES, ConfigValues
from bestchat.store import Exchange, Found, MessageStore
from bestchat.store.claimed import BranchEntry, Claimed, claimed
from bestchat.store.columns import (
    CLAIMED_CONVERSATION, CLAIMED_MESSAGE, CONVERSATION, MESSAGE, row_values,
)

_PARENT = aliased(Message, name="parent")
_NEWEST = (select(Message.id).where(Message.conversation_id == Conversation.id)
           .order_by(Message.created_at.desc(), Message.id.desc()).limit(1)
           .correlate(Conversation).scalar_subquery())


def _target(after_newest: bool) -> Any:
    """The conversation, its owner's state and the parent (the newest message, or the given
    ``parent_id`` if it is one of the conversation's)."""
    parent = _PARENT.id == (_NEWEST if after_newest else bindparam("parent_id"))
    return (select(Conversation.user_id.label("owner_id"), Conversation.model, Conversation.updated_at,
                   User.disabled, _PARENT.id.label("parent_id"), _PARENT.status.label("parent_status"))
            .join(User, User.id == Conversation.user_id)
            .outerjoin(_PARENT, and_(parent, _PARENT.conversation_id == Conversation.id))
            .where(Conversation.id == bindparam("conversation_id")))


_TARGET = {after_newest: _target(after_newest) for after_newest in (True, False)}
_TOUCH = (update(Conversation).where(Conversation.id == bindparam("conversation_id"))
          .values(updated_at=bindparam("now")).execution_options(synchronize_session=False))
_INSERT_CONVERSATION = insert(Conversation.__table__)
_INSERT_MESSAGES = insert(Message.__table__)

_CLAIM = (update(Message)
          .where(Message.id == bindparam("message_id"), Message.status.in_(CLAIMABLE))
          .values(status=MessageStatus.STREAMING.value, updated_at=bindparam("now"))
          .returning(*(getattr(Message, name) for name in CLAIMED_MESSAGE)))
_CONVERSATION_OF = (select(*(getattr(Conversation, name) for name in CLAIMED_CONVERSATION))
                    .where(Conversation.id == bindparam("conversation_id")))
_MESSAGES_OF = (select(*(getattr(Message, name) for name in BranchEntry._fields))
                .where(Message.conversation_id == bindparam("conversation_id")))


class SQLiteStore(MessageStore):
    def add_exchange(self, exchange: Exchange, admitted: Callable[[], str]) -> Found:
        messages, session = exchange.messages, db.session
        if exchange.conversation is None:
            given = messages[0].parent_id
            row = session.execute(_TARGET[exchange.after_newest],
                                  {"conversation_id": exchange.conversation_id, "parent_id": given}).first()
            if row is None:
                return Found(None, False, False, None, None, None, None, False)
            found = Found(owner_id=row.owner_id, disabled=row.disabled,
                          parent_found=exchange.after_newest or given is None or row.parent_id is not None,
                          parent_id=row.parent_id, parent_status=row.parent_status, model=row.model,
                          updated_at=row.updated_at, stored=False)
            if not found.allows(exchange.user_id):
                return found
        else:
            found = Found(owner_id=exchange.user_id, disabled=False, parent_found=True,
                          parent_id=messages[0].parent_id, parent_status=None,
                          model=exchange.conversation.model, updated_at=None, stored=False)
        if exchange.after_newest:
            messages[0].parent_id = found.parent_id
        if exchange.inherit_model:
            exchange.answer.model = exchange.answer.model or found.model
        exchange.answer.status = admitted()
        try:
            if exchange.conversation is not None:
                session.execute(_INSERT_CONVERSATION, row_values(exchange.conversation, CONVERSATION))
            else:
                session.execute(_TOUCH, {"conversation_id": exchange.conversation_id, "now": exchange.now})
            session.execute(_INSERT_MESSAGES, [row_values(message, MESSAGE) for message in messages])
            _commit_keeping_values()
        except BaseException:
            session.rollback()
            raise
        return found._replace(stored=True)

    def claim(self, message_id: uuid.UUID) -> Claimed | None:
        """The claim, then the conversation, its messages and the configs, on the session's
        connection in autocommit mode, given back."""
        connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        try:
            row = connection.execute(_CLAIM, {"message_id": message_id, "now": utcnow()}).first()
            if row is not None:
                of = {"conversation_id": row.conversation_id}
                values = {**row._mapping, **connection.execute(_CONVERSATION_OF, of).one()._mapping}
                entries = [BranchEntry._make(entry) for entry in connection.execute(_MESSAGES_OF, of)]
                configs = [ConfigValues._make(entry) for entry in
                           connection.execute(ENABLED_CONFIG_VALUES, {"user_id": values["user_id"]})]
        except BaseException:
            db.session.rollback()
            raise
        db.session.commit()  # gives the connection back (nothing to commit: autocommit)
        return None if row is None else claimed(message_id, values, entries, configs)


def _commit_keeping_values() -> None:
    """Commit without expiring what the session holds: the exchange's rows are written from
    their in-memory values and never loaded into it, and expiring the caller's objects (the
    signed-in user) would only cost a SELECT each when they are read next."""
    session = db.session()
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
