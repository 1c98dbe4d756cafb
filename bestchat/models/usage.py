"""Token usage and cost per model round of a generated message, the basis of the usage pages,
limits and billing. ``cost`` None means the price was unknown when the row was written (never
stored as $0); ``price_source`` says where a known price came from."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, TimestampMixin


class UsageLog(IdMixin, TimestampMixin, Base):
    __tablename__ = "usage_logs"
    # The console's usage dashboard and home read rows by time.
    __table_args__ = (Index("ix_usage_logs_created_at", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    # The user's group when the row was written (the first of their groups by name), for
    # cost per group.
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"), index=True)
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    # Of the prompt tokens, those the provider served from its cache.
    cached_tokens: Mapped[int] = mapped_column(default=0)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 8), default=None)
    # admin, provider or model_map; None with an unknown cost.
    price_source: Mapped[str | None] = mapped_column(String(20), default=None)
    # The model <-> tool round of the answer this row counts (one row per round), and the
    # milliseconds its tool calls ran.
    round: Mapped[int] = mapped_column(default=0)
    tool_ms: Mapped[int] = mapped_column(default=0)
