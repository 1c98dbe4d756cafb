"""Read-only access to every user's conversations for support (the console's Conversations page).

:func:`search` lists conversations, the most recently active first, filtered by owner email,
title text, model, a range of UTC days of last activity and the status of the last answer.
:func:`open_for_support` reads one conversation with its messages and writes the access to the
audit log (``conversation.viewed_by_admin``): reading someone's conversation is itself an event
an operator must be able to account for. Listing writes nothing. Nothing here changes a
conversation.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from bestchat.errors import Invalid, NotFound
from bestchat.extensions import db
from bestchat.models import Conversation, Message, UsageLog, User
from bestchat.models.message_status import MessageStatus
from bestchat.services import audit
from bestchat.services.usage_report import DateRange

PER_PAGE = 25
STATUSES = tuple(status.value for status in MessageStatus)


@dataclass(frozen=True)
class Filters:
    """What the list is narrowed to; empty fields do not narrow it."""

    owner: str = ""
    title: str = ""
    model: str = ""
    span: DateRange | None = None
    status: str = ""

    def __post_init__(self) -> None:
        if self.status and self.status not in STATUSES:
            raise Invalid("invalid_parameter", f"'status' must be one of {', '.join(STATUSES)}")


@dataclass(frozen=True)
class Listed:
    id: uuid.UUID
    title: str
    owner_email: str
    model: str | None
    created_at: datetime
    updated_at: datetime
    last_status: str | None


@dataclass(frozen=True)
class Page:
    items: list[Listed]
    total: int
    number: int
    pages: int


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _last_answer_status():
    """The status of the conversation's newest assistant message (a correlated subquery that the
    (conversation_id, created_at) index answers)."""
    return (select(Message.status)
            .where(Message.conversation_id == Conversation.id, Message.role == "assistant")
            .order_by(Message.created_at.desc()).limit(1)
            .correlate(Conversation).scalar_subquery())


def search(filters: Filters, number: int = 1, per_page: int = PER_PAGE) -> Page:
    """Page ``number`` (from 1) of the conversations that match, most recently active first."""
    last_status = _last_answer_status().label("last_status")
    query = select(Conversation.id, Conversation.title, User.email, Conversation.provider,
                   Conversation.model, Conversation.created_at, Conversation.updated_at,
                   last_status).join(User, User.id == Conversation.user_id)
    if filters.owner:
        query = query.where(func.lower(User.email).like(_like(filters.owner.strip().lower()), escape="\\"))
    if filters.title:
        query = query.where(func.lower(Conversation.title).like(_like(filters.title.strip().lower()), escape="\\"))
    if filters.model:
        wanted = filters.model.strip()
        provider, _, model = wanted.partition("/")
        query = query.where((Conversation.model == wanted)
                            | ((Conversation.provider == provider) & (Conversation.model == model)))
    if filters.span:
        query = query.where(Conversation.updated_at >= filters.span.start,
                            Conversation.updated_at < filters.span.end)
    if filters.status:
        query = query.where(_last_answer_status() == filters.status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    pages = max(1, math.ceil(total / per_page))
    number = min(max(1, number), pages)
    rows = db.session.execute(query.order_by(Conversation.updated_at.desc(), Conversation.id)
                              .limit(per_page).offset((number - 1) * per_page)).all()
    items = [Listed(id=row.id, title=row.title, owner_email=row.email,
                    model=f"{row.provider}/{row.model}" if row.provider and row.model else row.model,
                    created_at=row.created_at, updated_at=row.updated_at, last_status=row.last_status)
             for row in rows]
    return Page(items=items, total=total, number=number, pages=pages)


@dataclass(frozen=True)
class Shown:
    """One message as support sees it."""

    id: uuid.UUID
    role: str
    content: str
    status: str
    model: str | None
    token_count: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: datetime
    attachments: list[str]
    error: str | None


def _attachments(parts: list[Any] | None) -> list[str]:
    return [str(part.get("name") or "file") for part in parts or ()
            if isinstance(part, dict) and part.get("type") == "file"]


def open_for_support(actor_id: uuid.UUID, raw_id: str) -> tuple[Conversation, User, list[Shown]]:
    """The conversation, its owner and its messages (oldest first); the access is audited and
    committed. :class:`NotFound` for a malformed or unknown id (nothing is written then)."""
    try:
        key = uuid.UUID(str(raw_id))
    except ValueError:
        raise NotFound("conversation") from None
    conversation = db.session.get(Conversation, key)
    if conversation is None:
        raise NotFound("conversation")
    audit.record("conversation.viewed_by_admin", actor_id, "conversation", conversation.id,
                 owner_id=str(conversation.user_id))
    db.session.commit()
    owner = db.session.get(User, conversation.user_id)
    usage = {message_id: (prompt, completion) for message_id, prompt, completion in db.session.execute(
        select(UsageLog.message_id, func.sum(UsageLog.prompt_tokens), func.sum(UsageLog.completion_tokens))
        .where(UsageLog.conversation_id == key, UsageLog.message_id.is_not(None))
        .group_by(UsageLog.message_id)).all()}
    messages = db.session.scalars(select(Message).where(Message.conversation_id == key)
                                  .order_by(Message.created_at, Message.id)).all()
    shown = [Shown(id=m.id, role=m.role, content=m.content or "", status=m.status,
                   model=f"{m.provider}/{m.model}" if m.provider and m.model else m.model,
                   token_count=m.token_count, prompt_tokens=usage.get(m.id, (None, None))[0],
                   completion_tokens=usage.get(m.id, (None, None))[1], created_at=m.created_at,
                   attachments=_attachments(m.parts), error=m.error)
             for m in messages]
    return conversation, owner, shown
