"""The four usage limits, as columns shared by plans, groups and per-user overrides.

Each column is None when its level sets no limit of that kind; which level wins for a user is
decided in ``bestchat.services.limits``. ``UserLimits`` holds one user's overrides.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, TimestampMixin

# The limit kinds, in the order they are shown and checked; also the column name suffixes.
LIMIT_KINDS = ("requests_per_minute", "tokens_per_day", "cost_per_month", "concurrent_generations")


class LimitColumns:
    """Requests per minute, tokens (prompt + completion) per UTC day, cost in USD per UTC
    calendar month, and answers generating at once; None: not set at this level."""

    limit_requests_per_minute: Mapped[int | None] = mapped_column(default=None)
    limit_tokens_per_day: Mapped[int | None] = mapped_column(default=None)
    limit_cost_per_month: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), default=None)
    limit_concurrent_generations: Mapped[int | None] = mapped_column(default=None)


class UserLimits(LimitColumns, IdMixin, TimestampMixin, Base):
    """One user's overrides (set by an admin); they win over the user's groups and plan."""

    __tablename__ = "user_limits"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True, index=True)
