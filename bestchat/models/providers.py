"""Provider configurations: a user's own key or a global one, encrypted at rest."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, TimestampMixin


class ProviderConfig(IdMixin, TimestampMixin, Base):
    """``user_id`` None means a global config set by an admin. The key is write-only."""

    __tablename__ = "provider_configs"

    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    key_last4: Mapped[str | None] = mapped_column(String(4))
    base_url: Mapped[str | None] = mapped_column(String(500))
    enabled_models: Mapped[list[Any]] = mapped_column(default=list)
    # What the upstream's ``/v1/models`` listed at the last discovery (None: never discovered),
    # and the display name chosen for a model id.
    discovered_models: Mapped[list[Any] | None] = mapped_column(default=None)
    models_refreshed_at: Mapped[datetime | None]
    model_names: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fallbacks: Mapped[list[Any]] = mapped_column(default=list)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(default=100)
    enabled: Mapped[bool] = mapped_column(default=True)


# The order in which a user's provider configs are tried: the user's own first, then the
# global ones, each by priority, then oldest first. Every reader of configs sorts by it (the
# generation's claim renders it into its SQL).
FAILOVER_ORDER = (ProviderConfig.user_id.is_(None), ProviderConfig.priority, ProviderConfig.created_at)
