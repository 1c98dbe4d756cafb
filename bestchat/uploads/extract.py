"""The text a model is given of an upload, extracted once when the file arrives.

- text, Markdown and source code: the bytes decoded as UTF-8 (:mod:`.sniff` has already
  proved they are);
- PDF: each page's text with pypdf, pages separated by a blank line; a PDF with no text
  layer (a scan) gives "" and ``note: "no_text"``;
- DOCX: paragraphs and tables, in document order, with python-docx, after the zip's declared
  sizes are checked (:func:`check_zip`): a zip bomb is refused before anything unpacks;
- images: no text (they are sent to vision-capable models as image parts).

Text is cut at ``max_chars`` (``details["truncated"] = True``), and NUL or surrogate code
points a document may hold are replaced so both databases can store it. A PDF or DOCX that
cannot be read is :class:`~bestchat.errors.Unreadable` (422 ``unreadable_file``).

``details`` is stored with the upload: ``{"kind", "pages"?, "note"?, "truncated"?}``.
"""

from __future__ import annotations

import codecs
import logging
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

from bestchat.errors import Unreadable
from bestchat.text import storable
from bestchat.uploads.sniff import CHUNK, DOCX, IMAGE_TYPES, PDF, kind_of

log = logging.getLogger(__name__)

# A zip part may unpack to at most this many times its compressed size (once it is bigger
# than RATIO_FLOOR): ordinary Word XML compresses 5-20:1, bombs 1000:1.
MAX_RATIO = 200
RATIO_FLOOR = 1024 * 1024
MAX_ZIP_MEMBERS = 10_000


@dataclass
class Extracted:
    text: str | None
    details: dict[str, Any] = field(default_factory=dict)


def extract(fileobj: IO[bytes], mime: str, *, max_chars: int, unzipped_max_bytes: int) -> Extracted:
    """The text of the file in ``fileobj`` (seekable, read from the start) of type ``mime``."""
    fileobj.seek(0)
    kind = kind_of(mime)
    if mime in IMAGE_TYPES:
        return Extracted(None, {"kind": kind})
    if mime == PDF:
        text, details = _pdf(fileobj, max_chars)
    elif mime == DOCX:
        check_zip(fileobj, unzipped_max_bytes)
        text, details = _docx(fileobj)
    else:
        text, details = _utf8(fileobj, max_chars), {}
    details = {"kind": kind, **details}
    if len(text) > max_chars:
        text = text[:max_chars]
        details["truncated"] = True
    return Extracted(storable(text), details)


def _utf8(fileobj: IO[bytes], max_chars: int) -> str:
    """Decode in chunks, stopping once past ``max_chars`` (a BOM is dropped)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pieces: list[str] = []
    count = 0
    while count <= max_chars and (chunk := fileobj.read(CHUNK)):
        piece = decoder.decode(chunk)
        pieces.append(piece)
        count += len(piece)
    pieces.append(decoder.decode(b"", final=count <= max_chars))
    return "".join(pieces)


def _pdf(fileobj: IO[bytes], max_chars: int) -> tuple[str, dict[str, Any]]:
    from pypdf import PdfReader  # noqa: PLC0415 - loaded on the first PDF

    try:
        reader = PdfReader(fileobj)
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable(None, "the PDF is encrypted with a password")
        pages = []
        count = 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            if text:
                pages.append(text)
                count += len(text) + 2
            if count > max_chars:
                break
        page_count = len(reader.pages)
    except Unreadable:
        raise
    except Exception as error:  # noqa: BLE001 - pypdf raises many kinds on a damaged file
        log.info("unreadable PDF: %s: %s", type(error).__name__, error)
        raise Unreadable(None, "the PDF cannot be read (damaged or not a PDF)") from None
    text = "\n\n".join(pages)
    details: dict[str, Any] = {"pages": page_count}
    if not text.strip():
        text, details["note"] = "", "no_text"
    return text, details


def check_zip(fileobj: IO[bytes], unzipped_max_bytes: int) -> None:
    """Refuse a zip whose parts would unpack to more than ``unzipped_max_bytes`` in all, or
    any part whose declared compression ratio is a bomb's, from the central directory alone.
    The declared sizes bound what unpacking yields: Python's zipfile stops each part at its
    declared size (and fails its CRC check past it)."""
    fileobj.seek(0)
    try:
        with zipfile.ZipFile(fileobj) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise Unreadable(None, "the document is not a readable zip") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise Unreadable(None, f"the document has more than {MAX_ZIP_MEMBERS} parts")
    total = 0
    for member in members:
        total += member.file_size
        ratio_applies = member.file_size > RATIO_FLOOR
        if ratio_applies and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            raise Unreadable(None, "the document would unpack to far more than its size (a zip bomb?)")
    if total > unzipped_max_bytes:
        raise Unreadable(None, f"the document would unpack to more than {unzipped_max_bytes} bytes")
    fileobj.seek(0)


def _docx(fileobj: IO[bytes]) -> tuple[str, dict[str, Any]]:
    from docx import Document  # noqa: PLC0415 - loaded on the first DOCX
    from docx.table import Table  # noqa: PLC0415

    try:
        document = Document(fileobj)
        blocks = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows]
                blocks.append("\n".join(rows))
            elif block.text.strip():
                blocks.append(block.text)
    except Exception as error:  # noqa: BLE001 - python-docx/lxml raise many kinds on a damaged file
        log.info("unreadable DOCX: %s: %s", type(error).__name__, error)
        raise Unreadable(None, "the document cannot be read (damaged or not a Word document)") from None
    text = "\n\n".join(blocks)
    return text, ({} if text.strip() else {"note": "no_text"})
