"""The incoming file on its way to storage: an anonymous temporary file that hashes (sha256)
and counts every chunk written to it, and refuses to grow past the upload limit.

The request body is parsed in chunks straight into a :class:`Spool`, so a file is never held
whole in memory, and what it is (sniffing), its text and whether this user already has the
same bytes are all known before anything is stored. The temporary file has no name on disk
(``tempfile.TemporaryFile``): a refused, failed or interrupted upload leaves nothing behind,
even if the process dies.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from bestchat.errors import TooLarge


def too_large(limit: int) -> TooLarge:
    return TooLarge("too_large", f"the file is larger than the upload limit of {limit} bytes",
                    details={"limit": limit})


class Spool:
    """A writable, then readable, temporary file of at most ``limit`` bytes."""

    def __init__(self, limit: int, directory: str | Path | None = None):
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = tempfile.TemporaryFile(dir=directory)

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(self.limit)
        self._hash.update(data)
        return self._file.write(data)

    @property
    def file(self):
        """The temporary file itself (seekable; for readers that want a real file)."""
        return self._file

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
