"""Uploaded files: metadata and extracted text here, bytes in storage under ``storage_key``."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, TimestampMixin


class FileUpload(IdMixin, TimestampMixin, Base):
    __tablename__ = "file_uploads"
    # one stored copy per user and content (sha256 de-duplication)
    __table_args__ = (Index("ix_file_uploads_user_id_sha256", "user_id", "sha256"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    mime: Mapped[str] = mapped_column(String(255))  # sniffed from the bytes, never the client's
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    # The text extracted for the model (None: an image, or nothing to extract) and its token
    # count, counted once here.
    text: Mapped[str | None] = mapped_column(Text)
    text_tokens: Mapped[int | None]
    # How the text was extracted: {"kind": "text"|"pdf"|"docx"|"image", "pages"?, "note"?,
    # "truncated"?}.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
