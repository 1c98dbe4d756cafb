"""Prompt items as the OpenAI chat messages sent to the provider.

A file's text is appended to its message as ``<file name="..." id="...">`` ... ``</file>``, or
as one line ``[file NAME: NOTE]`` when only a reference is sent. Images are image parts for a
vision-capable model and a note line for the others. What is added here is what
:mod:`bestchat.context.items` counted (:func:`bestchat.context.items.file_tags`,
:func:`bestchat.context.fitting.note_line`).
"""

from __future__ import annotations

from typing import Any, Callable

from bestchat.context.base import Item
from bestchat.context.fitting import SEPARATOR, SUMMARY_PREFIX, note_line
from bestchat.context.items import IMAGE_GONE, NO_VISION, file_tags


def render(items: list[Item], *, vision: bool, load_image: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """The messages of ``items``, in order.

    :param vision: whether the model accepts image parts.
    :param load_image: upload id -> the image as a ``data:`` URL, or None when its bytes are
        gone (a note is sent instead). Called only for vision models.
    """
    return [_message(item, vision, load_image) for item in items]


def _message(item: Item, vision: bool, load_image: Callable[[str], str | None]) -> dict[str, Any]:
    if item.kind == "summary":
        return {"role": "system", "content": SUMMARY_PREFIX + item.text}
    if item.role == "tool":
        return {"role": "tool", "tool_call_id": item.tool_call_id, "content": item.text}
    if item.tool_calls:
        return {"role": "assistant", "content": item.text or None, "tool_calls": [dict(call) for call in item.tool_calls]}
    if not item.files and not item.images:
        return {"role": item.role, "content": item.text}
    text = item.text
    for piece in item.files:
        if piece.text is None:
            text += SEPARATOR + note_line("file", piece.name, piece.note)
        else:
            opening, closing = file_tags(piece.name, piece.upload_id)
            text += opening + piece.text + closing
    urls: list[str] = []
    for image in item.images:
        url = (load_image(image.upload_id) if image.upload_id else image.url) if vision else None
        if url:
            urls.append(url)
        else:
            text += SEPARATOR + note_line("image", image.name, IMAGE_GONE if vision else NO_VISION)
    text = text.removeprefix(SEPARATOR) if not item.text else text
    if not urls:
        return {"role": item.role, "content": text}
    return {"role": item.role, "content": [{"type": "text", "text": text},
                                           *({"type": "image_url", "image_url": {"url": url}} for url in urls)]}
