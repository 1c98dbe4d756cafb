"""Groups of users and what their members may use.

A group's ``models`` and ``tools`` are allow-lists (model ids ``<provider>/<model>``, tool names);
None allows everything. Its limit columns apply to its members (``bestchat.services.limits``). The rules that read them live in ``bestchat.services.groups``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, TimestampMixin
from bestchat.models.limits import LimitColumns


class Group(LimitColumns, IdMixin, TimestampMixin, Base):
    __tablename__ = "groups"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))
    models: Mapped[list[Any] | None] = mapped_column(default=None)
    tools: Mapped[list[Any] | None] = mapped_column(default=None)


class GroupMember(IdMixin, TimestampMixin, Base):
    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id", name="uq_group_members_group_user"),)

    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
