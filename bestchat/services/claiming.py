"""The start of a generation job: claim its message and read what the provider call needs.

This is on the path of every first token, so it is kept to the fewest round trips and no ORM
objects, on an autocommit connection (no ``BEGIN``/``COMMIT`` round trips: the claim is one
statement, atomic on its own):

- PostgreSQL: one statement. ``WITH claimed AS (UPDATE messages ... FROM conversations
  RETURNING ...)`` claims the message (``pending``/``queued`` -> ``streaming``) and returns
  its and its conversation's columns, with the conversation's messages (id, parent, role,
  status, content) and the user's enabled provider configs (in failover order, as
  :data:`bestchat.providers.registry.ENABLED_CONFIG_VALUES` reads them) each aggregated into
  one JSON array; run by :func:`bestchat.database.run_prepared` (a prepared statement on a
  pooled connection, no ORM session).
- SQLite (local, no round trips to save): the claim, the conversation, the messages, the
  configs.

The answer's branch is then walked in memory. :func:`claim` returns None when the message was
not ``pending``/``queued`` (a redelivered job, a cancel before the start, a delete).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from bestchat.database import run_prepared
from bestchat.extensions import db
from bestchat.models import Conversation, Message
from bestchat.models.base import utcnow
from bestchat.providers.registry import ENABLED_CONFIG_VALUES, ConfigValues
from bestchat.services.conversations import ancestry

CLAIMABLE = ("pending", "queued")

# PostgreSQL, for the driver itself (written once; SQLAlchemy's statement building and
# compiling would cost more than the round trip it saves).
_CLAIM_POSTGRESQL = """
WITH claimed AS (
    UPDATE messages SET status = 'streaming', updated_at = %(now)s
    FROM conversations
    WHERE messages.id = %(message_id)s AND messages.status IN ('pending', 'queued')
      AND conversations.id = messages.conversation_id
    RETURNING messages.conversation_id, messages.parent_id, messages.model, messages.last_seq,
              messages.content, conversations.user_id, conversations.title,
              conversations.system_prompt, conversations.settings
)
SELECT claimed.*,
       (SELECT json_agg(json_build_array(m.id, m.parent_id, m.role, m.status, m.content))
        FROM messages m WHERE m.conversation_id = claimed.conversation_id) AS messages,
       (SELECT json_agg(json_build_array(p.id, p.provider, p.api_key_encrypted, p.base_url,
                                         p.enabled_models, p.fallbacks, p.options, p.user_id)
                        ORDER BY p.user_id IS NULL, p.priority, p.created_at)
        FROM provider_configs p
        WHERE p.enabled AND (p.user_id = claimed.user_id OR p.user_id IS NULL)) AS configs
FROM claimed
"""

# SQLite: built once, parameters bound per call.
_MESSAGE = (Message.conversation_id, Message.parent_id, Message.model, Message.last_seq, Message.content)
_CONVERSATION = (Conversation.user_id, Conversation.title, Conversation.system_prompt, Conversation.settings)
_CLAIM = (update(Message).where(Message.id == bindparam("message_id"), Message.status.in_(CLAIMABLE))
          .values(status="streaming", updated_at=bindparam("now")).returning(*_MESSAGE))
_CONVERSATION_OF = select(*_CONVERSATION).where(Conversation.id == bindparam("conversation_id"))
_MESSAGES_OF = (select(Message.id, Message.parent_id, Message.role, Message.status, Message.content)
                .where(Message.conversation_id == bindparam("conversation_id")))


@dataclass(frozen=True)
class Claimed:
    """A claimed answer and its conversation, as plain values."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    parent_id: uuid.UUID | None
    model: str | None
    last_seq: int
    content: str
    user_id: uuid.UUID
    title: str
    system_prompt: str | None
    settings: dict[str, Any]
    history: list[dict[str, str]]  # the branch before the answer: ``{"role", "content"}``
    configs: list[ConfigValues]  # the user's enabled provider configs, in failover order


def claim(message_id: uuid.UUID) -> Claimed | None:
    """Claim ``message_id`` for this job (now ``streaming``, committed) and read its start.
    No database connection is held when it returns (autocommit: nothing to commit)."""
    values = {"message_id": message_id, "now": utcnow()}
    if db.engine.dialect.name == "postgresql":
        rows = run_prepared(_CLAIM_POSTGRESQL, values)
        if not rows:
            return None
        row = rows[0]
        messages = [tuple(entry) for entry in row.messages or ()]
        configs = [ConfigValues(uuid.UUID(entry[0]), *entry[1:]) for entry in row.configs or ()]
    else:
        claimed = _claim_sqlite(values)
        if claimed is None:
            return None
        row, messages, configs = claimed
    conversation_id, parent_id, model, last_seq, content, user_id, title, system_prompt, settings = row[:9]
    return Claimed(message_id=message_id, conversation_id=conversation_id, parent_id=parent_id,
                   model=model, last_seq=last_seq, content=content or "", user_id=user_id,
                   title=title, system_prompt=system_prompt, settings=dict(settings or {}),
                   history=_history(messages, parent_id), configs=configs)


def _claim_sqlite(values: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]], list[ConfigValues]] | None:
    """The claim, then the conversation, its messages and the configs (a local database: no
    round trips to save), on the session's connection in autocommit mode, given back."""
    connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        row = connection.execute(_CLAIM, values).first()
        if row is not None:
            of = {"conversation_id": row.conversation_id}
            row = (*row, *connection.execute(_CONVERSATION_OF, of).one())
            messages = [tuple(entry) for entry in connection.execute(_MESSAGES_OF, of)]
            configs = [ConfigValues(*entry) for entry in
                       connection.execute(ENABLED_CONFIG_VALUES, {"user_id": row[5]})]
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()  # gives the connection back (nothing to commit: autocommit)
    return None if row is None else (row, messages, configs)


def _history(messages: list[tuple[Any, ...]], parent_id: uuid.UUID | None) -> list[dict[str, str]]:
    """The branch ending at ``parent_id``, oldest first, without failed or empty answers.
    ``messages`` are ``(id, parent_id, role, status, content)``; ids compared as text (the
    JSON aggregate gives them as text)."""
    by_id = {str(entry[0]): entry for entry in messages}
    chain = ancestry(by_id, str(parent_id) if parent_id else None,
                     lambda entry: str(entry[1]) if entry[1] else None)
    return [{"role": role, "content": content} for _id, _parent, role, status, content in chain
            if not (role == "assistant" and (status == "failed" or not content))]
