"""Images a ``/v1`` request sends as ``data:`` URLs become the user's uploads before the
answer starts, so a message's parts hold a reference (``{"type": "file", "upload_id"}``) and
never the image itself; the same bytes sent again are the same upload (sha256). Outside
URLs stay ``{"type": "image_url", "url"}`` parts, passed to the model as they are (BestChat
never fetches them)."""

from __future__ import annotations

import base64
import binascii

from bestchat.models import User
from bestchat.openai_compat.parsing import InvalidRequest
from bestchat.services.conversations import TranscriptMessage
from bestchat.services.uploads import UploadManager, new_spool
from bestchat.uploads.sniff import sniff

DECODE_CHUNK = 64 * 1024  # base64 characters decoded at a time (a multiple of 4)


def stored_images(user: User, transcript: list[TranscriptMessage]) -> list[TranscriptMessage]:
    """``transcript`` with each ``image_data`` part stored as ``user``'s upload."""
    manager = UploadManager(user)
    result = []
    for index, message in enumerate(transcript):
        parts = []
        for part in message.parts:
            if part.get("type") == "image_data":
                upload = _store(manager, part["mime"], part["data"], index)
                part = {"type": "file", "upload_id": str(upload.id), "name": upload.name, "mime": upload.mime}
            parts.append(part)
        result.append(message._replace(parts=parts))
    return result


def _store(manager: UploadManager, mime: str, data: str, index: int):
    """One image as an upload (its type sniffed from the bytes, as every upload's)."""
    extension = mime.split("/", 1)[1].replace("jpeg", "jpg")
    with new_spool() as spool:
        try:
            for start in range(0, len(data), DECODE_CHUNK):
                spool.write(base64.b64decode(data[start:start + DECODE_CHUNK], validate=True))
        except (binascii.Error, ValueError):
            raise InvalidRequest("an image's data: URL is not valid base64", f"messages[{index}].content") from None
        spool.seek(0)
        if not (sniff(spool.file, "image") or "").startswith("image/"):
            raise InvalidRequest("an image_url's data is not a PNG, JPEG, GIF or WebP image",
                                 f"messages[{index}].content")
        spool.seek(0)
        upload, _created = manager.create(f"image.{extension}", spool)
    return upload
