"""Token usage and cost per generated message, the basis of the usage page and billing."""

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
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 8), default=Decimal(0))
    # The model <-> tool round of the answer this row counts (one row per round), and the
    # milliseconds its tool calls ran.
    round: Mapped[int] = mapped_column(default=0)
    tool_ms: Mapped[int] = mapped_column(default=0)
