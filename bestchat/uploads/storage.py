"""Where upload bytes live: one :class:`Storage` port, chosen once at app start.

- :class:`LocalStorage` (``UPLOAD_STORAGE = "local"``, the default): files under
  ``UPLOAD_FOLDER`` (relative paths are under the instance folder), which every web and worker
  process must share. A file is written to a temporary file in its final directory, then
  renamed, so a reader never sees half a file.
- :class:`S3Storage` (``UPLOAD_STORAGE = "s3"``): any S3-compatible store through boto3
  (``UPLOAD_S3_*`` settings). A file streams up with ``upload_fileobj`` (a multipart upload in
  bounded parts past its threshold) and is read back with ``get_object``.

Keys are made by the server (:func:`new_key`, a random uuid), never from a client's file name;
both implementations refuse any other shape of key, so no key can name a path outside the
store. :func:`init_storage` binds the storage to the app (in ``create_app``); everything else
asks :func:`get_storage`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, Protocol

from flask import Flask, current_app

from bestchat.settings import ConfigurationError

EXTENSION = "bestchat_storage"
CHUNK = 1024 * 1024  # bytes copied at a time
_KEY = re.compile(r"^[0-9a-f]{32}$")


def new_key() -> str:
    """A fresh storage key: 32 hex digits of a random uuid."""
    return uuid.uuid4().hex


def _checked(key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class Storage(Protocol):
    """What the upload service asks of a store. A missing key is :class:`FileNotFoundError`
    for :meth:`open` and :meth:`read`, and no error for :meth:`delete`."""

    def save(self, key: str, fileobj: IO[bytes]) -> None:
        """Store everything ``fileobj`` has left to read under ``key``, in chunks."""

    def open(self, key: str) -> IO[bytes]:
        """A readable binary file object of the stored bytes (the caller closes it)."""

    def read(self, key: str) -> bytes:
        """All the stored bytes (for small files: images sent to a model)."""

    def delete(self, key: str) -> None:
        """Remove the bytes; already gone is fine."""


class LocalStorage:
    """Files under ``folder``, at ``<key[:2]>/<key>`` (private to the server's user)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        key = _checked(key)
        return self.folder / key[:2] / key

    def save(self, key: str, fileobj: IO[bytes]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(descriptor, "wb") as out:
                shutil.copyfileobj(fileobj, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def open(self, key: str) -> IO[bytes]:
        return open(self.path(key), "rb")

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self.path(key).unlink()


class S3Storage:
    """Objects ``<prefix><key>`` in one bucket of an S3-compatible store."""

    def __init__(self, client: Any, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415 - boto3 only in S3 mode

        # One part in memory at a time (no transfer threads): an upload's memory is bounded
        # by the part size whatever the file's size.
        self.transfer = TransferConfig(multipart_threshold=8 * 1024 * 1024,
                                       multipart_chunksize=8 * 1024 * 1024, use_threads=False)

    @classmethod
    def from_config(cls, config: dict) -> "S3Storage":
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        client = boto3.session.Session().client(
            "s3", endpoint_url=config.get("UPLOAD_S3_ENDPOINT_URL") or None,
            region_name=config.get("UPLOAD_S3_REGION") or None,
            aws_access_key_id=config.get("UPLOAD_S3_ACCESS_KEY_ID") or None,
            aws_secret_access_key=config.get("UPLOAD_S3_SECRET_ACCESS_KEY") or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60))
        return cls(client, config["UPLOAD_S3_BUCKET"], config.get("UPLOAD_S3_PREFIX") or "")

    def _name(self, key: str) -> str:
        return self.prefix + _checked(key)

    def save(self, key: str, fileobj: IO[bytes]) -> None:
        self.client.upload_fileobj(fileobj, self.bucket, self._name(key), Config=self.transfer)

    def open(self, key: str) -> IO[bytes]:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(key) from None
            raise

    def read(self, key: str) -> bytes:
        body = self.open(key)
        try:
            return body.read()
        finally:
            body.close()

    def delete(self, key: str) -> None:
        # S3 answers a delete of a missing key with success.
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))


def storage_from_config(config: dict) -> Storage:
    kind = config.get("UPLOAD_STORAGE") or "local"
    if kind == "local":
        return LocalStorage(config["UPLOAD_FOLDER"])
    if kind == "s3":
        if not config.get("UPLOAD_S3_BUCKET"):
            raise ConfigurationError("refusing to start: UPLOAD_STORAGE is 's3' but UPLOAD_S3_BUCKET is not set")
        return S3Storage.from_config(config)
    raise ConfigurationError(f"refusing to start: UPLOAD_STORAGE must be 'local' or 's3', not {kind!r}")


def init_storage(app: Flask) -> Storage:
    """Choose the upload storage from the settings, once (called by ``create_app``)."""
    storage = storage_from_config(app.config)
    app.extensions[EXTENSION] = storage
    return storage


def get_storage(app: Flask | None = None) -> Storage:
    return (app or current_app).extensions[EXTENSION]
