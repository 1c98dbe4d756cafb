"""Tool calls made by the model (approval workflow, results, timings) and auto-approval rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, TimestampMixin


class ToolExecution(IdMixin, TimestampMixin, Base):
    __tablename__ = "tool_executions"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tool: Mapped[str] = mapped_column(String(100))
    call_id: Mapped[str | None] = mapped_column(String(100))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    risk: Mapped[str] = mapped_column(String(16), default="low")  # low | medium | high
    # pending_approval | approved | denied | running | succeeded | failed | timed_out
    status: Mapped[str] = mapped_column(String(20), default="pending_approval")
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    approver_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )


class AutoApprovalSetting(IdMixin, TimestampMixin, Base):
    """A user's standing decision for one tool, or for every tool of a risk level."""

    __tablename__ = "auto_approval_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tool: Mapped[str | None] = mapped_column(String(100))
    risk_level: Mapped[str | None] = mapped_column(String(16))  # low | medium | high
    decision: Mapped[str] = mapped_column(String(16))  # approve | deny | ask
