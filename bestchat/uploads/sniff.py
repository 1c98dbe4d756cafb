"""What an uploaded file is, from its bytes: a small table of the types BestChat accepts.

The client's Content-Type never decides; the file name only chooses among text types, and only
once the bytes are known to be text. Accepted:

- PDF, PNG, JPEG, GIF and WEBP by their signatures;
- DOCX: a zip whose directory lists ``word/document.xml`` (read from the zip's central
  directory; nothing is unpacked here);
- text: valid UTF-8 (a BOM allowed) with no NUL byte anywhere, as ``text/markdown`` or a
  source-code type when the name's extension says so, else ``text/plain``. Markup that a
  browser would render (HTML, SVG, XML) is ``text/plain``: it is never served as markup.

Anything else (executables, other archives, other encodings, random bytes) is refused:
:func:`sniff` returns None and the service answers 415.
"""

from __future__ import annotations

import codecs
import os
import zipfile
from typing import IO

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PNG, JPEG, GIF, WEBP = "image/png", "image/jpeg", "image/gif", "image/webp"
TEXT = "text/plain"
MARKDOWN = "text/markdown"

IMAGE_TYPES = frozenset({PNG, JPEG, GIF, WEBP})

# (signature at offset 0, type); WEBP is checked apart (RIFF....WEBP).
SIGNATURES = (
    (b"%PDF-", PDF),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
)
ZIP_SIGNATURE = b"PK\x03\x04"

# Extension -> type, for files whose bytes are UTF-8 text.
TEXT_EXTENSIONS = {
    ".txt": TEXT, ".text": TEXT, ".log": TEXT,
    ".md": MARKDOWN, ".markdown": MARKDOWN, ".mdown": MARKDOWN,
    ".py": "text/x-python", ".pyi": "text/x-python",
    ".js": "text/javascript", ".mjs": "text/javascript", ".cjs": "text/javascript",
    ".jsx": "text/javascript", ".ts": "text/x-typescript", ".tsx": "text/x-typescript",
    ".json": "application/json", ".jsonl": "application/jsonl",
    ".css": "text/css", ".csv": "text/csv", ".tsv": "text/tab-separated-values",
    ".yaml": "text/yaml", ".yml": "text/yaml", ".toml": "text/x-toml", ".ini": "text/plain",
    ".c": "text/x-c", ".h": "text/x-c", ".cc": "text/x-c++", ".cpp": "text/x-c++",
    ".cxx": "text/x-c++", ".hpp": "text/x-c++", ".cs": "text/x-csharp", ".java": "text/x-java",
    ".kt": "text/x-kotlin", ".scala": "text/x-scala", ".go": "text/x-go", ".rs": "text/x-rust",
    ".rb": "text/x-ruby", ".php": "text/x-php", ".pl": "text/x-perl", ".lua": "text/x-lua",
    ".swift": "text/x-swift", ".r": "text/x-r", ".sql": "text/x-sql", ".sh": "text/x-shellscript",
    ".bash": "text/x-shellscript", ".diff": "text/x-diff", ".patch": "text/x-diff",
    ".tex": "text/x-tex", ".rst": "text/x-rst",
}

HEAD = 64  # bytes read for the signatures
CHUNK = 1024 * 1024


def sniff(fileobj: IO[bytes], name: str = "") -> str | None:
    """The accepted type of the bytes in ``fileobj`` (seekable; read from the start, left at
    the start), or None when they are none of them."""
    fileobj.seek(0)
    head = fileobj.read(HEAD)
    fileobj.seek(0)
    try:
        return _sniff(fileobj, head, name)
    finally:
        fileobj.seek(0)


def _sniff(fileobj: IO[bytes], head: bytes, name: str) -> str | None:
    for signature, mime in SIGNATURES:
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(ZIP_SIGNATURE):
        return DOCX if is_docx(fileobj) else None
    if is_utf8_text(fileobj):
        return TEXT_EXTENSIONS.get(os.path.splitext(name)[1].lower(), TEXT)
    return None


def is_docx(fileobj: IO[bytes]) -> bool:
    """Whether the zip in ``fileobj`` is a Word document (its central directory names the
    main part and the package's content types)."""
    try:
        with zipfile.ZipFile(fileobj) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return False
    return "word/document.xml" in names and "[Content_Types].xml" in names


def is_utf8_text(fileobj: IO[bytes]) -> bool:
    """Whether every byte is valid UTF-8 and none is NUL (read in chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    while chunk := fileobj.read(CHUNK):
        if b"\x00" in chunk:
            return False
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError:
            return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def kind_of(mime: str) -> str:
    """The upload ``kind`` of an accepted type: "pdf", "docx", "image" or "text"."""
    if mime == PDF:
        return "pdf"
    if mime == DOCX:
        return "docx"
    if mime in IMAGE_TYPES:
        return "image"
    return "text"
