"""A branch as prompt items: the system prompt, then the messages of the branch that are sent, each
with its stored token count, its attachments, its group and turn, and whether it is pinned.

Inclusion: failed or empty answers are left out,
and so are tool calls no ``tool`` message of the branch answers (the assistant's text is kept).
An assistant message that called tools shares its group with the ``tool`` messages answering
it, so nothing ever sends a call without its result. Pinned: the system prompt, the newest user
message and everything after it.

Attachments are a user message's parts: ``{"type": "file", "upload_id", "name", "mime"}`` (an
upload, looked up in ``uploads``) and ``{"type": "image_url", "url"}`` (an outside image, from
``/v1``). The same upload attached several times is sent once, with its newest occurrence (the
last to be truncated); older occurrences are a one-line reference. A file's token count includes
the tags :mod:`bestchat.context.render` wraps it in, counted here once.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, NamedTuple

from bestchat.context.base import FilePiece, ImagePiece, Item
from bestchat.context.fitting import SEPARATOR, note_tokens
from bestchat.context.tokens import MESSAGE_OVERHEAD, count_text
from bestchat.models.message_status import MessageStatus
from bestchat.services.client_tools import tool_call_id_of, tool_calls_of

FILE = "file"
IMAGE_URL = "image_url"
# Notes render sends in place of a file's text or an image.
DELETED = "deleted"
ATTACHED_AGAIN = "attached again later"
NO_VISION = "this model does not accept images"
IMAGE_GONE = "no longer available"


class UploadFacts(NamedTuple):
    """What prompt assembly needs of an upload (a ``file_uploads`` row)."""

    name: str
    mime: str
    kind: str  # "text" | "pdf" | "docx" | "image"
    text: str | None  # the extracted text (None for images, or when nothing was extracted)
    text_tokens: int | None  # tokens of ``text``, overhead excluded


def file_tags(name: str, upload_id: str) -> tuple[str, str]:
    """The text render puts before and after a file's text (separator included)."""
    return f'{SEPARATOR}<file name="{_attr(name)}" id="{_attr(upload_id)}">\n', "\n</file>"


def build_items(branch: Iterable[Any], uploads: dict[str, UploadFacts], *, system_prompt: str | None,
                encoding: str | None = None, count: Callable[[str], int] | None = None,
                image_tokens: int = 1000) -> list[Item]:
    """The prompt items of ``branch`` (:class:`bestchat.store.claimed.BranchEntry`, oldest first:
    the messages before the answer).

    :param uploads: upload id -> :class:`UploadFacts` for the uploads the branch's messages
        attach; an id missing here was deleted (a note says so).
    :param count: tokens of a text, overhead excluded (default: ``count_text`` in ``encoding``);
        used only for what has no stored count (the system prompt, tags, notes).
    :param image_tokens: what one image costs (``CONTEXT_IMAGE_TOKENS``).
    """
    if count is None:
        def count(text: str) -> int:
            return count_text(text, encoding)
    entries = list(branch)
    answered = {tool_call_id_of(entry.parts) for entry in entries if entry.role == "tool"}
    items: list[Item] = []
    if system_prompt:
        items.append(Item(role="system", text=system_prompt, text_tokens=count(system_prompt) + MESSAGE_OVERHEAD,
                          message_id=None, group=0, turn=0, pinned=True, kind="system"))
    raw: list[tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]] = [((), ())] * len(items)
    call_group: dict[str, int] = {}  # tool call id -> the group of the assistant that made it
    turn: int | None = None
    for entry in entries:
        index = len(items)
        calls = tool_calls_of(entry.parts) if entry.role == "assistant" and entry.parts else []
        if calls and not all(call.get("id") in answered for call in calls):
            calls = []  # unanswered calls are not sent; the text is, as for any answer
        if entry.role == "assistant" and not calls and (entry.status == MessageStatus.FAILED or not entry.content):
            continue
        if entry.role == "user" or turn is None:
            turn = index
        group = index
        call_id = None
        if entry.role == "tool":
            call_id = tool_call_id_of(entry.parts)
            group = call_group.get(call_id, index)
        for call in calls:
            call_group[call.get("id")] = index
        if entry.token_count is not None:
            text_tokens = entry.token_count
        else:
            text_tokens = count(entry.content or "") + MESSAGE_OVERHEAD
            if calls:
                text_tokens += count(json.dumps(calls, ensure_ascii=False))
        raw.append(_attachments(entry.parts) if entry.role == "user" else ((), ()))
        items.append(Item(role=entry.role, text=entry.content or "", text_tokens=text_tokens,
                          message_id=str(entry.id), group=group, turn=turn, kind="message",
                          tool_calls=tuple(calls) if calls else None, tool_call_id=call_id))
    return _price_attachments(_pin(items), raw, uploads, count, image_tokens)


def _attachments(parts: Any) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """A user message's file parts and ``image_url`` parts (priced by :func:`_price_attachments`)."""
    if not parts:
        return (), ()
    files = [part for part in parts or () if isinstance(part, dict) and part.get("type") == FILE and part.get("upload_id")]
    images = [part for part in parts or () if isinstance(part, dict) and part.get("type") == IMAGE_URL and part.get("url")]
    return tuple(files), tuple(images)


def _pin(items: list[Item]) -> list[Item]:
    """Pin the newest user message and everything after it (the last message when there is no
    user message)."""
    start = next((i for i in range(len(items) - 1, -1, -1) if items[i].role == "user"), None)
    if start is None:
        start = next((i for i in range(len(items) - 1, -1, -1) if items[i].kind == "message"), len(items))
        if start < len(items):  # its whole group
            group = items[start].group
            start = next(i for i, item in enumerate(items) if item.group == group)
    return [item.but(pinned=True) if i >= start and not item.pinned else item for i, item in enumerate(items)]


def _price_attachments(items: list[Item], raw: list[tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]],
                       uploads: dict[str, UploadFacts], count: Callable[[str], int], image_tokens: int) -> list[Item]:
    """Each item with its attachments (``raw``: its file parts and image parts) as
    :class:`FilePiece` / :class:`ImagePiece` with their token costs; an upload attached more
    than once is sent with its newest occurrence only."""
    newest: dict[str, tuple[int, int]] = {}  # upload id -> (item index, part index) of its last attachment
    for index, (file_parts, _) in enumerate(raw):
        for position, part in enumerate(file_parts):
            newest[str(part["upload_id"])] = (index, position)
    priced: list[Item] = []
    for index, (item, (file_parts, image_parts)) in enumerate(zip(items, raw)):
        if not file_parts and not image_parts:
            priced.append(item)
            continue
        files: list[FilePiece] = []
        images: list[ImagePiece] = []
        for position, part in enumerate(file_parts):
            upload_id = str(part["upload_id"])
            facts = uploads.get(upload_id)
            name = str(part.get("name") or (facts.name if facts else "") or upload_id)
            mime = str(part.get("mime") or (facts.mime if facts else ""))
            if facts is None:
                files.append(_reference(upload_id, name, mime, DELETED, count))
            elif newest[upload_id] != (index, position):
                files.append(_reference(upload_id, facts.name or name, facts.mime or mime, ATTACHED_AGAIN, count))
            elif facts.kind == "image":
                images.append(ImagePiece(upload_id=upload_id, url=None, name=facts.name or name,
                                         mime=facts.mime or mime, tokens=image_cost(facts.name or name, image_tokens, count)))
            elif facts.text is None:
                files.append(_reference(upload_id, facts.name or name, facts.mime or mime, "no text could be read from it", count))
            else:
                opening, closing = file_tags(facts.name or name, upload_id)
                text_tokens = facts.text_tokens if facts.text_tokens is not None else count(facts.text)
                files.append(FilePiece(upload_id=upload_id, name=facts.name or name, mime=facts.mime or mime,
                                       text=facts.text, tokens=count(opening) + text_tokens + count(closing)))
        for part in image_parts:
            name = str(part.get("name") or "image")
            images.append(ImagePiece(upload_id=None, url=str(part["url"]), name=name, mime=str(part.get("mime") or ""),
                                     tokens=image_cost(name, image_tokens, count)))
        priced.append(item.but(files=tuple(files), images=tuple(images)))
    return priced


def _reference(upload_id: str, name: str, mime: str, note: str, count: Callable[[str], int]) -> FilePiece:
    return FilePiece(upload_id=upload_id, name=name, mime=mime, text=None, note=note,
                     tokens=note_tokens("file", name, note, count))


def image_cost(name: str, image_tokens: int, count: Callable[[str], int]) -> int:
    """An image's fixed cost, or the longest note render may send instead, when that is more."""
    return max(image_tokens, note_tokens("image", name, NO_VISION, count), note_tokens("image", name, IMAGE_GONE, count))


def _attr(value: str) -> str:
    """``value`` as a double-quoted attribute of the ``<file>`` tag (no quote, no newline)."""
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace("\n", " ")
