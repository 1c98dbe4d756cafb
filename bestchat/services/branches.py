"""The branch walk: which messages lead to a given one.

Every message points at the message before it (``parent_id``); an edit or a regenerate adds a
sibling, so a conversation is a tree and each of its leaves ends a branch. The prompt of an
answer is the branch ending at its parent (the generation's claim walks it), and a title is
taken from the first question of a branch.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import Message

T = TypeVar("T")


def branch(message: Message) -> list[Message]:
    """The messages from the conversation's start down to ``message`` (inclusive)."""
    rows = db.session.scalars(select(Message).where(Message.conversation_id == message.conversation_id))
    by_id = {m.id: m for m in rows}
    by_id.setdefault(message.id, message)
    return ancestry(by_id, message.id, lambda m: m.parent_id)


def ancestry(by_id: dict[Any, T], leaf_id: Any, parent_of: Callable[[T], Any]) -> list[T]:
    """The item ``leaf_id`` of ``by_id`` and its ancestors through ``parent_of`` (None at the
    root), oldest first; at most ``len(by_id)`` of them, whatever the data."""
    chain: list[T] = []
    current = by_id.get(leaf_id) if leaf_id is not None else None
    while current is not None and len(chain) < len(by_id):
        chain.append(current)
        parent = parent_of(current)
        current = by_id.get(parent) if parent is not None else None
    chain.reverse()
    return chain
