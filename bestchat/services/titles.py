"""Conversation titles: a new conversation is untitled until its first exchange ends, then it
is named after its first question."""

from __future__ import annotations

import re

from bestchat.models import Conversation, Message
from bestchat.services.branches import branch

DEFAULT_TITLE = "New chat"
TITLE_MAX = 60


def auto_title(answer: Message) -> Conversation | None:
    """After the first exchange, name an untitled conversation after its first question.
    Returns the conversation when it was renamed (not yet committed)."""
    conversation = answer.conversation
    if conversation.title != DEFAULT_TITLE:
        return None
    first = next((m for m in branch(answer) if m.role == "user" and m.content.strip()), None)
    if first is None:
        return None
    conversation.title = short_title(first.content)
    return conversation


def short_title(text: str) -> str:
    """The first line of ``text``, whitespace collapsed, cut at a word to at most
    :data:`TITLE_MAX` characters."""
    line = re.sub(r"\s+", " ", text.strip().splitlines()[0] if text.strip() else "").strip()
    if len(line) <= TITLE_MAX:
        return line or DEFAULT_TITLE
    cut = line[: TITLE_MAX - 1].rsplit(" ", 1)[0] or line[: TITLE_MAX - 1]
    return cut.rstrip(" ,.;:") + "…"
