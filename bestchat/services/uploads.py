"""Uploads, for one user: the UploadManager, and removing stored bytes.

The rules: a file is at most ``UPLOAD_MAX_BYTES`` (413 ``too_large``, nothing stored); empty
is 400 ``empty_file``; its type is sniffed from the bytes (:mod:`bestchat.uploads.sniff`; 415
``unsupported_media_type`` for anything not accepted); its text is extracted once
(:mod:`bestchat.uploads.extract`; 422 ``unreadable_file``) and counted once
(:func:`bestchat.context.tokens.count_text`). The same bytes uploaded again by the same user
(same sha256) are the existing upload: nothing new is stored. The storage key is made here,
never from the client; the client's file name is kept for display only, cleaned
(:func:`clean_name`). Another user's upload is not found, like an unknown id.

Bytes are removed after the rows that point at them are gone: deleting an upload (audited as
``upload.deleted``) and deleting an account (:func:`remove_bytes`, called by
:func:`bestchat.services.accounts.delete_account`). Messages that attached a deleted upload
keep their part; the model is then told the file was deleted.
"""

from __future__ import annotations

import logging
import os
import unicodedata
import uuid
from pathlib import Path
from typing import IO, Iterable

from flask import current_app
from sqlalchemy import select

from bestchat.context.tokens import count_text
from bestchat.errors import Invalid, NotFound, UnsupportedMediaType
from bestchat.extensions import db
from bestchat.models import FileUpload, User
from bestchat.services import audit
from bestchat.services.tools import owned
from bestchat.uploads.extract import extract
from bestchat.uploads.sniff import sniff
from bestchat.uploads.spool import Spool
from bestchat.uploads.storage import get_storage, new_key

log = logging.getLogger(__name__)

MAX_NAME = 255
DEFAULT_NAME = "file"
# Where incoming files are spooled (under UPLOAD_FOLDER; nameless temporary files).
SPOOL_DIR = "incoming"


def clean_name(raw: str | None) -> str:
    """The display name of an uploaded file: the last path component (``/`` or ``\\``), with
    NUL and every other control or format character removed, surrounding spaces and dots
    trimmed, at most 255 characters (the extension kept); "file" when nothing is left."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = name.strip().strip(".").strip()
    if len(name) > MAX_NAME:
        stem, extension = os.path.splitext(name)
        extension = extension if len(extension) <= 16 else ""
        name = stem[:MAX_NAME - len(extension)].rstrip() + extension
    return name or DEFAULT_NAME


def new_spool(app=None) -> Spool:
    """An empty spool for one incoming file, limited to ``UPLOAD_MAX_BYTES``."""
    config = (app or current_app).config
    return Spool(int(config["UPLOAD_MAX_BYTES"]), Path(config["UPLOAD_FOLDER"]) / SPOOL_DIR)


class UploadManager:
    """The upload operations of ``user``."""

    def __init__(self, user: User):
        self.user = user

    def create(self, name: str | None, spool: Spool) -> tuple[FileUpload, bool]:
        """Store the file in ``spool`` (already received whole, hashed and counted) as an upload
        named ``name``. Returns (upload, created): created False when this user already has
        these bytes (that upload; nothing stored)."""
        if spool.size == 0:
            raise Invalid("empty_file", "the file is empty")
        existing = self.find(spool.sha256)
        if existing is not None:
            return existing, False
        name = clean_name(name)
        mime = sniff(spool.file, name)
        if mime is None:
            raise UnsupportedMediaType(None, "this kind of file is not accepted (text, Markdown, source code, "
                                             "PDF, DOCX, PNG, JPEG, GIF or WEBP)")
        config = current_app.config
        extracted = extract(spool.file, mime, max_chars=int(config["UPLOAD_TEXT_MAX_CHARS"]),
                            unzipped_max_bytes=int(config["UPLOAD_UNZIPPED_MAX_BYTES"]))
        tokens = count_text(extracted.text) if extracted.text is not None else None
        key = new_key()
        storage = get_storage()
        spool.seek(0)
        storage.save(key, spool.file)
        upload = FileUpload(id=uuid.uuid4(), user_id=self.user.id, name=name, size=spool.size,
                            sha256=spool.sha256, mime=mime, storage_key=key, text=extracted.text,
                            text_tokens=tokens, details=extracted.details)
        db.session.add(upload)
        try:
            db.session.commit()
        except BaseException:
            db.session.rollback()
            _remove_quietly(storage, key)
            raise
        return upload, True

    def find(self, sha256: str) -> FileUpload | None:
        """This user's upload of the bytes with this sha256, if any (the oldest)."""
        return db.session.scalar(
            select(FileUpload).where(FileUpload.user_id == self.user.id, FileUpload.sha256 == sha256)
            .order_by(FileUpload.created_at).limit(1))

    def list(self, *, limit: int = 50, offset: int = 0) -> tuple[list[FileUpload], bool]:
        """The user's uploads, newest first. Returns (page, has_more)."""
        rows = list(db.session.scalars(
            select(FileUpload).where(FileUpload.user_id == self.user.id)
            .order_by(FileUpload.created_at.desc(), FileUpload.id.desc()).limit(limit + 1).offset(offset)))
        return rows[:limit], len(rows) > limit

    def get(self, upload_id) -> FileUpload:
        return owned(FileUpload, self.user.id, upload_id, "upload")

    def open(self, upload_id) -> tuple[FileUpload, IO[bytes]]:
        """The upload and a readable file of its bytes (the caller closes it); not found when
        the bytes are gone."""
        upload = self.get(upload_id)
        try:
            return upload, get_storage().open(upload.storage_key)
        except FileNotFoundError:
            log.warning("upload %s has no stored bytes (key %s)", upload.id, upload.storage_key)
            raise NotFound("upload") from None

    def delete(self, upload_id) -> None:
        """Delete the upload, then its bytes."""
        upload = self.get(upload_id)
        key = upload.storage_key
        audit.record("upload.deleted", self.user.id, "file_upload", upload.id, name=upload.name,
                     size=upload.size, sha256=upload.sha256)
        db.session.delete(upload)
        db.session.commit()
        remove_bytes([key])


def storage_keys_of(user_id: uuid.UUID) -> list[str]:
    """The storage keys of every upload of the user (read before the rows are deleted)."""
    return list(db.session.scalars(select(FileUpload.storage_key).where(FileUpload.user_id == user_id)))


def remove_bytes(keys: Iterable[str]) -> None:
    """Remove the stored bytes of uploads whose rows are already gone. A failure is logged
    and the rest go on: the rows are the truth, a leftover file is only space."""
    storage = get_storage()
    for key in keys:
        _remove_quietly(storage, key)


def _remove_quietly(storage, key: str) -> None:
    try:
        storage.delete(key)
    except Exception:  # noqa: BLE001 - see remove_bytes
        log.exception("could not remove the stored bytes of upload key %s", key)
