"""Tool calls made by the model (approval workflow, results, timings) and auto-approval rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, JSONType, TimestampMixin


class ExecutionStatus(StrEnum):
    """A tool call's life: ``pending_approval`` (a person decides) or ``approved`` (by a rule)
    -> ``running`` -> ``succeeded``/``failed``/``timed_out``; or ``denied`` (by the person, a
    rule, or no decision in time: then ``timed_out`` without running)."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    DENIED = "denied"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


# Finished: the call's result (or refusal) goes back to the model.
EXECUTION_DONE = frozenset({ExecutionStatus.DENIED, ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED,
                            ExecutionStatus.TIMED_OUT})


class Decision(StrEnum):
    """A standing approval choice, per tool or per risk level."""

    ALWAYS = "always"
    ASK = "ask"
    NEVER = "never"


class DecidedBy(StrEnum):
    """Who decided a call: a person, a standing rule, or the approval timeout."""

    USER = "user"
    RULE = "rule"
    TIMEOUT = "timeout"


class ToolExecution(IdMixin, TimestampMixin, Base):
    __tablename__ = "tool_executions"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tool: Mapped[str] = mapped_column(String(100))
    call_id: Mapped[str | None] = mapped_column(String(100))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    risk: Mapped[str] = mapped_column(String(16), default="low")  # low | medium | high
    # pending_approval | approved | denied | running | succeeded | failed | timed_out
    status: Mapped[str] = mapped_column(String(20), default=ExecutionStatus.PENDING_APPROVAL.value)
    result: Mapped[Any | None] = mapped_column(JSONType)  # the tool's JSON value
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    approver_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The model <-> tool round of the answer that made the call (0 first).
    round: Mapped[int] = mapped_column(default=0)
    # Who decided (DecidedBy), and until when a pending approval waits.
    decided_by: Mapped[str | None] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class AutoApprovalSetting(IdMixin, TimestampMixin, Base):
    """A user's standing decision for one tool, or for every tool of a risk level."""

    __tablename__ = "auto_approval_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tool: Mapped[str | None] = mapped_column(String(100))
    risk_level: Mapped[str | None] = mapped_column(String(16))  # low | medium | high
    decision: Mapped[str] = mapped_column(String(16))  # Decision: always | ask | never
