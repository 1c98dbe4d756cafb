"""The message store on PostgreSQL: storing an exchange and claiming an answer are one
statement each, prepared, on a pooled connection in autocommit mode
(:func:`bestchat.database.run_prepared`), atomic on their own.

An exchange into an existing conversation (:func:`exchange_statement`)::

    WITH target   AS (the conversation, its owner's state, the parent: the newest message or
                      the given one, and the conversation's updated_at),
         allowed  AS (target, if the caller owns it, the account is active, the parent was
                      found and no answer runs after it),
         touched  AS (UPDATE conversations SET updated_at ... WHERE id IN allowed),
         inserted AS (INSERT INTO messages: each new message, from allowed)
    SELECT what target found, and how many rows were inserted

Nothing is written unless every check passes; the caller tells which one failed from what
``target`` found. A new conversation (a transcript) is one INSERT of it and its messages. The
answer is inserted ``pending`` while its admission runs (a Redis round trip, in a greenlet,
started by the caller before this statement); when the admission says ``queued`` its status is
corrected, and when it refuses (or fails) the exchange is deleted again and the conversation's
``updated_at`` put back, before anything is announced: both only on the overload path.

The claim (:data:`CLAIM`) moves the answer ``pending``/``queued`` -> ``streaming`` and returns
its and its conversation's columns, the conversation's messages and the user's enabled
provider configs in failover order (:data:`bestchat.models.providers.FAILOVER_ORDER`), each
aggregated into one JSON array built from the column lists it is read back with.

Every parameter of an INSERT is cast to its column's type (an ``INSERT ... SELECT`` does not
infer the types of untyped parameters from the target columns). Statements are built once.
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Callable

from sqlalchemy.dialects import postgresql

from bestchat.database import once_more_if_dropped, run_prepared
from bestchat.models.base import utcnow
from bestchat.models.message_status import ACTIVE, CLAIMABLE, MessageStatus, sql_list
from bestchat.models.providers import FAILOVER_ORDER
from bestchat.providers.registry import ConfigValues
from bestchat.store import Exchange, Found, MessageStore
from bestchat.store.claimed import BranchEntry, Claimed, claimed
from bestchat.store.columns import (
    CLAIMED_CONVERSATION, CLAIMED_MESSAGE, CONVERSATION, MESSAGE, column, names, parameter, parameters,
    placeholders,
)

log = logging.getLogger(__name__)

_NEWEST = """LEFT JOIN LATERAL (SELECT m.id, m.status FROM messages m WHERE m.conversation_id = c.id
                       ORDER BY m.created_at DESC, m.id DESC LIMIT 1) parent ON true"""


@functools.cache
def exchange_statement(count: int, after_newest: bool, inherit_model: bool) -> str:
    """The statement storing ``count`` new messages into an existing conversation (parameters:
    ``conversation_id``, ``user_id``, ``now`` and the messages' ``<column>_<row>``)."""
    first_parent = parameter(column(MESSAGE, "parent_id"), 0)
    if after_newest:
        join, parent_found, first = _NEWEST, "true", {"parent_id": "allowed.parent_id"}
    else:
        join = f"LEFT JOIN messages parent ON parent.id = {first_parent} AND parent.conversation_id = c.id"
        parent_found, first = f"({first_parent} IS NULL OR parent.id IS NOT NULL)", {}
    rows = []
    for index in range(count):
        computed = dict(first) if index == 0 else {}
        if index == count - 1 and inherit_model:
            computed["model"] = f"COALESCE({parameter(column(MESSAGE, 'model'), index)}, allowed.model)"
        rows.append(f"SELECT {placeholders(MESSAGE, index, computed=computed)} FROM allowed")
    union = "\n    UNION ALL\n    ".join(rows)
    return f"""
WITH target AS (
    SELECT c.id, c.user_id AS owner_id, c.model, c.updated_at, u.disabled,
           {parent_found} AS parent_found, parent.id AS parent_id, parent.status AS parent_status
    FROM conversations c JOIN users u ON u.id = c.user_id
    {join}
    WHERE c.id = %(conversation_id)s
), allowed AS (
    SELECT * FROM target
    WHERE owner_id = %(user_id)s AND NOT disabled AND parent_found
      AND (parent_status IS NULL OR parent_status NOT IN ({sql_list(ACTIVE)}))
), touched AS (
    UPDATE conversations SET updated_at = %(now)s WHERE id IN (SELECT id FROM allowed)
), inserted AS (
    INSERT INTO messages ({names(MESSAGE)})
    {union}
    RETURNING 1
)
SELECT owner_id, disabled, parent_found, parent_id, parent_status, model, updated_at,
       (SELECT count(*) FROM inserted) AS stored
FROM target
"""


@functools.cache
def new_conversation_statement(count: int) -> str:
    """The statement storing a new conversation (``conversation_<column>_0``) and ``count``
    messages into it."""
    rows = ", ".join(f"({placeholders(MESSAGE, index)})" for index in range(count))
    return (f"WITH created AS (INSERT INTO conversations ({names(CONVERSATION)}) "
            f"VALUES ({placeholders(CONVERSATION, 0, 'conversation_')})) "
            f"INSERT INTO messages ({names(MESSAGE)}) VALUES {rows}")


_SET_STATUS = "UPDATE messages SET status = %(status)s WHERE id = %(id)s"
_UNSTORE = """
WITH removed AS (DELETE FROM messages WHERE id = ANY(%(ids)s))
UPDATE conversations SET updated_at = %(updated_at)s WHERE id = %(conversation_id)s AND updated_at = %(now)s
"""
_UNSTORE_CONVERSATION = "DELETE FROM conversations WHERE id = %(conversation_id)s"

_FAILOVER_ORDER = ", ".join(str(term.compile(dialect=postgresql.dialect())) for term in FAILOVER_ORDER)

CLAIM = f"""
WITH claimed AS (
    UPDATE messages SET status = {sql_list({MessageStatus.STREAMING})}, updated_at = %(now)s
    FROM conversations
    WHERE messages.id = %(message_id)s AND messages.status IN ({sql_list(CLAIMABLE)})
      AND conversations.id = messages.conversation_id
    RETURNING {", ".join(f"messages.{name}" for name in CLAIMED_MESSAGE)},
              {", ".join(f"conversations.{name}" for name in CLAIMED_CONVERSATION)}
)
SELECT claimed.*,
       (SELECT json_agg(json_build_array({", ".join(f"m.{name}" for name in BranchEntry._fields)}))
        FROM messages m WHERE m.conversation_id = claimed.conversation_id) AS messages,
       (SELECT json_agg(json_build_array({", ".join(f"provider_configs.{name}" for name in ConfigValues._fields)})
                        ORDER BY {_FAILOVER_ORDER})
        FROM provider_configs
        WHERE provider_configs.enabled
          AND (provider_configs.user_id = claimed.user_id OR provider_configs.user_id IS NULL)) AS configs
FROM claimed
"""


class PostgreSQLStore(MessageStore):
    def add_exchange(self, exchange: Exchange, admitted: Callable[[], str]) -> Found:
        messages = exchange.messages
        if exchange.conversation is not None:
            if exchange.inherit_model:
                exchange.answer.model = exchange.answer.model or exchange.conversation.model
            run_prepared(new_conversation_statement(len(messages)), {
                **parameters([exchange.conversation], CONVERSATION, "conversation_"),
                **parameters(messages, MESSAGE)})
            found = Found(owner_id=exchange.user_id, disabled=False, parent_found=True,
                          parent_id=messages[0].parent_id, parent_status=None,
                          model=exchange.conversation.model, updated_at=None, stored=True)
        else:
            rows = run_prepared(exchange_statement(len(messages), exchange.after_newest, exchange.inherit_model),
                                {"conversation_id": exchange.conversation_id, "user_id": exchange.user_id,
                                 "now": exchange.now, **parameters(messages, MESSAGE)})
            if not rows:
                return Found(None, False, False, None, None, None, None, False)
            row = rows[0]
            found = Found(owner_id=row.owner_id, disabled=row.disabled, parent_found=row.parent_found,
                          parent_id=row.parent_id, parent_status=row.parent_status, model=row.model,
                          updated_at=row.updated_at, stored=row.stored == len(messages))
            if not found.stored:
                return found
        if exchange.after_newest:
            messages[0].parent_id = found.parent_id
        if exchange.inherit_model:
            exchange.answer.model = exchange.answer.model or found.model
        try:
            status = admitted()
            if status != exchange.answer.status:
                run_prepared(_SET_STATUS, {"status": str(status), "id": exchange.answer.id})
                exchange.answer.status = status
        except BaseException:
            self._unstore_quietly(exchange, found)
            raise
        return found

    def _unstore_quietly(self, exchange: Exchange, found: Found) -> None:
        """Undo a stored exchange whose answer was refused (logged if that fails too: the
        reaper then ends the answer, which no job will run)."""
        try:
            if exchange.conversation is not None:
                run_prepared(_UNSTORE_CONVERSATION, {"conversation_id": exchange.conversation_id})
            else:
                run_prepared(_UNSTORE, {
                    "ids": [message.id for message in exchange.messages], "now": exchange.now,
                    "conversation_id": exchange.conversation_id, "updated_at": found.updated_at})
        except Exception:  # noqa: BLE001 - the refusal is what the caller must see
            log.exception("could not remove the refused exchange of %s", exchange.answer.id)

    def claim(self, message_id: uuid.UUID) -> Claimed | None:
        rows = once_more_if_dropped(lambda: run_prepared(CLAIM, {"message_id": message_id, "now": utcnow()}))
        if not rows:
            return None
        row = rows[0]
        configs = [config._replace(id=uuid.UUID(config.id))
                   for config in map(ConfigValues._make, row.configs or ())]
        return claimed(message_id, row._asdict(), (BranchEntry._make(entry) for entry in row.messages or ()),
                       configs)

