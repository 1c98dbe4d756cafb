"""Accounts: users (roles, disabled flag, hashed password, session generation), their personal
API tokens and their remember-me tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bestchat.models.base import Base, IdMixin, TimestampMixin

ROLES = ("admin", "user")


class User(IdMixin, TimestampMixin, UserMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16), default="user")
    disabled: Mapped[bool] = mapped_column(default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_login_at: Mapped[datetime | None]
    # Part of every web session's id: bumping it (logout, password change, disable) ends every
    # session and remember-me cookie of the account at once.
    session_generation: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    tokens: Mapped[list["ApiToken"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_active(self) -> bool:  # Flask-Login: a disabled user has no session
        return not self.disabled

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def get_id(self) -> str:  # Flask-Login: the session names the account AND its generation
        return f"{self.id}:{self.session_generation}"


class ApiToken(IdMixin, TimestampMixin, Base):
    """A personal API token. Only its SHA-256 is stored; the plaintext is shown once."""

    __tablename__ = "api_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


class RememberToken(IdMixin, TimestampMixin, Base):
    """A remember-me cookie's random token. Only its SHA-256 is stored; signing out, a password
    change or disabling the account deletes the account's tokens."""

    __tablename__ = "remember_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
