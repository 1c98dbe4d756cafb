"""The PostgreSQL statements that store a send, each one round trip: above all the send after
the newest message, read, checked and written by one statement.

On the path of every first token a send used to read (the conversation, its newest message,
the account) and then write (the conversation's touch and both messages): two round trips to
the database, each a wake-up of another process. :data:`SEND_POSTGRESQL` does both in one
statement on an autocommit connection, atomic on its own::

    WITH target  AS (the conversation, its owner's state, its newest message and its updated_at),
         allowed AS (target, if the caller owns it, the account is active and no answer runs),
         touched AS (UPDATE conversations SET updated_at ... WHERE id IN allowed),
         inserted AS (INSERT INTO messages: the question after the newest message, then the answer)
    SELECT what target found, and how many rows were inserted

Nothing is written unless every check passes; the caller then tells which one failed from
what ``target`` found (not found / account disabled / an answer still running). The answer is
inserted ``pending`` while its admission runs (a Redis round trip, in a greenlet); when the
admission says ``queued`` :func:`set_status` corrects it, and when it refuses (or fails)
:func:`unstore` deletes both rows and puts the conversation's ``updated_at`` back, before
anything was announced or enqueued: both only on the overload path.

Every parameter is cast to its column's type (an ``INSERT ... SELECT`` does not infer the
types of untyped parameters from the target columns). The text is built once, at import.

:func:`touch_and_insert` is the write alone (the conversation's touch and the messages, after
a read done elsewhere: a send after a given message, an edit, a regenerate). Both take the
messages' values as :func:`message_parameters` gives them: ``<column>_<row>``.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql

from bestchat.database import run_prepared
from bestchat.extensions import db
from bestchat.models import Message
from bestchat.services.message_status import ACTIVE

# (attribute, column name, PostgreSQL type) of every column of a message
MESSAGE_COLUMNS = tuple((attr.key, attr.columns[0].name, attr.columns[0].type.compile(dialect=postgresql.dialect()))
                        for attr in sa_inspect(Message).column_attrs)


def message_parameters(messages: tuple[Message, ...] | list[Message]) -> dict[str, Any]:
    """The messages' column values as the statements' parameters ``<column>_<row>`` (``parts``
    as JSON text)."""
    values: dict[str, Any] = {}
    for index, message in enumerate(messages):
        for key, name, _kind in MESSAGE_COLUMNS:
            value = getattr(message, key)
            values[f"{name}_{index}"] = json.dumps(value) if name == "parts" else value
    return values


@functools.cache
def touch_and_insert(count: int) -> str:
    """``WITH (UPDATE conversations ...) INSERT INTO messages VALUES`` ``count`` rows (parameters
    ``<column>_<row>``, ``conversation_id`` and ``now``). Written out once per row count:
    SQLAlchemy does not cache the compilation of a multi-row INSERT, and compiling it costs
    more than running it."""
    rows = ", ".join("(" + ", ".join(f"%({name}_{index})s" + ("::jsonb" if name == "parts" else "")
                                     for _key, name, _kind in MESSAGE_COLUMNS) + ")" for index in range(count))
    return ("WITH touched AS (UPDATE conversations SET updated_at = %(now)s WHERE id = %(conversation_id)s) "
            f"INSERT INTO messages ({', '.join(name for _key, name, _kind in MESSAGE_COLUMNS)}) VALUES {rows}")


def _select_row(index: int, computed: dict[str, str]) -> str:
    """One message's values as a SELECT list over ``allowed``: parameters ``<column>_<index>``,
    each cast to its column's type, except the ``computed`` columns (SQL expressions)."""
    return ", ".join(computed.get(name, f"CAST(%({name}_{index})s AS {kind})") for _key, name, kind in MESSAGE_COLUMNS)


_MODEL_TYPE = next(kind for _key, name, kind in MESSAGE_COLUMNS if name == "model")

SEND_POSTGRESQL = f"""
WITH target AS (
    SELECT c.id, c.user_id, c.model, c.updated_at, u.disabled,
           newest.id AS newest_id, newest.status AS newest_status
    FROM conversations c JOIN users u ON u.id = c.user_id
    LEFT JOIN LATERAL (SELECT m.id, m.status FROM messages m WHERE m.conversation_id = c.id
                       ORDER BY m.created_at DESC, m.id DESC LIMIT 1) newest ON true
    WHERE c.id = %(conversation_id)s
), allowed AS (
    SELECT * FROM target
    WHERE user_id = %(user_id)s AND NOT disabled
      AND (newest_status IS NULL OR newest_status NOT IN ({", ".join(f"'{status}'" for status in ACTIVE)}))
), touched AS (
    UPDATE conversations SET updated_at = %(now)s WHERE id IN (SELECT id FROM allowed)
), inserted AS (
    INSERT INTO messages ({", ".join(name for _key, name, _kind in MESSAGE_COLUMNS)})
    SELECT {_select_row(0, {"parent_id": "allowed.newest_id"})} FROM allowed
    UNION ALL
    SELECT {_select_row(1, {"model": f"COALESCE(CAST(%(model_1)s AS {_MODEL_TYPE}), allowed.model)"})} FROM allowed
    RETURNING 1
)
SELECT user_id, model, updated_at, disabled, newest_id, newest_status,
       (SELECT count(*) FROM inserted) AS stored
FROM target
"""

_SET_STATUS = "UPDATE messages SET status = %(status)s WHERE id = %(id)s"
_UNSTORE = """
WITH removed AS (DELETE FROM messages WHERE id IN (%(question_id)s, %(answer_id)s))
UPDATE conversations SET updated_at = %(updated_at)s WHERE id = %(conversation_id)s AND updated_at = %(now)s
"""


def applies() -> bool:
    """Whether a send can use :func:`store`: on PostgreSQL. (It runs on a pooled connection of
    its own, in autocommit mode: whatever the caller's session holds stays apart.)"""
    return db.engine.dialect.name == "postgresql"


def store(question: Message, answer: Message, *, user_id: uuid.UUID) -> Any:
    """Insert ``question`` after the conversation's newest message and ``answer`` after it
    (its ``model`` defaults to the conversation's), if ``user_id`` owns the conversation, the
    account is active and no answer is running. Returns what the read found (``user_id``,
    ``model``, ``updated_at``, ``disabled``, ``newest_id``, ``newest_status``, and ``stored``:
    2, or 0 when a check failed), or None when there is no such conversation."""
    values = {"conversation_id": question.conversation_id, "user_id": user_id, "now": question.created_at,
              **message_parameters((question, answer))}
    rows = run_prepared(SEND_POSTGRESQL, values)
    return rows[0] if rows else None


def set_status(answer_id: uuid.UUID, status: str) -> None:
    """The stored answer's admission status (``queued``), before it is announced."""
    run_prepared(_SET_STATUS, {"status": status, "id": answer_id})


def unstore(question: Message, answer: Message, *, updated_at: datetime) -> None:
    """Undo :func:`store` (the answer was refused): both messages deleted, the conversation's
    ``updated_at`` back to ``updated_at`` unless something touched it since."""
    run_prepared(_UNSTORE, {
        "question_id": question.id, "answer_id": answer.id, "conversation_id": question.conversation_id,
        "updated_at": updated_at, "now": question.created_at})
