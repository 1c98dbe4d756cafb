"""What a generation's claim gives its job: the answer, its conversation, the branch before it
and the user's provider configs, as plain values (no ORM objects, no connection held)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, NamedTuple

from bestchat.providers.registry import ConfigValues
from bestchat.services.branches import ancestry
from bestchat.store.columns import CLAIMED_CONVERSATION, CLAIMED_MESSAGE


class BranchEntry(NamedTuple):
    """What a claim reads of each message of the conversation, for the branch walk (its fields
    are the columns read, in this order)."""

    id: Any
    parent_id: Any
    role: str
    status: str
    content: str
    parts: Any
    token_count: int | None = None  # counted when the message was written (None: not counted)


@dataclass(frozen=True)
class Claimed:
    """A claimed answer and its conversation, as plain values."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    parent_id: uuid.UUID | None
    model: str | None
    last_seq: int
    content: str
    # The answer's parts: the tool rounds of a generation that paused for an approval, or the
    # tools an OpenAI-compatible client offered (``bestchat.services.tool_loop``).
    parts: list[Any]
    user_id: uuid.UUID
    title: str
    system_prompt: str | None
    settings: dict[str, Any]
    disabled_tools: list[str]  # tools the owner switched off for the conversation
    context_strategy: list[str] | None  # the conversation's context strategies (None: the default)
    branch: list[BranchEntry]  # the messages before the answer, oldest first
    configs: list[ConfigValues]  # the user's enabled provider configs, in failover order


def claimed(message_id: uuid.UUID, row: Mapping[str, Any], entries: Iterable[BranchEntry],
            configs: list[ConfigValues]) -> Claimed:
    """The :class:`Claimed` of ``row`` (the :data:`CLAIMED_MESSAGE` and
    :data:`CLAIMED_CONVERSATION` columns by name) and the conversation's messages."""
    values = {name: row[name] for name in (*CLAIMED_MESSAGE, *CLAIMED_CONVERSATION)}
    values["content"] = values["content"] or ""
    values["settings"] = dict(values["settings"] or {})
    values["parts"] = list(values["parts"] or [])
    values["disabled_tools"] = list(values["disabled_tools"] or [])
    values["context_strategy"] = list(values["context_strategy"]) if values["context_strategy"] else None
    chain = branch(entries, values["parent_id"])
    return Claimed(message_id=message_id, branch=chain, configs=configs, **values)


def branch(entries: Iterable[BranchEntry], parent_id: uuid.UUID | None) -> list[BranchEntry]:
    """The branch ending at ``parent_id``, oldest first. Ids are compared as text (a JSON
    aggregate gives them as text)."""
    by_id = {str(entry.id): entry for entry in entries}
    return ancestry(by_id, str(parent_id) if parent_id else None,
                    lambda entry: str(entry.parent_id) if entry.parent_id else None)
