"""The server -> client events of the public contract, built in one place.

Every event is a JSON object with ``type``. ``chunk`` events carry the message's gap-free
``seq``; ``tool.*`` events sit between them in the message's stream; ``message.completed`` and
``message.failed`` are terminal: the last event of a message's stream. The WebSocket and the SSE endpoint send exactly these objects.
"""

from __future__ import annotations

from typing import Any

from bestchat.models import Message
from bestchat.models.message_status import MessageStatus
from bestchat.serializers import message_json

CHUNK = "chunk"
CREATED = "message.created"
COMPLETED = "message.completed"
FAILED = "message.failed"
TYPING = "typing"
CONVERSATION_UPDATED = "conversation.updated"
CONVERSATION_DELETED = "conversation.deleted"
TOOL_CALL = "tool.call"
TOOL_APPROVAL_REQUIRED = "tool.approval_required"
TOOL_RESULT = "tool.result"
TOOL_EVENTS = frozenset({TOOL_CALL, TOOL_APPROVAL_REQUIRED, TOOL_RESULT})
TERMINAL = frozenset({COMPLETED, FAILED})


def chunk(*, message_id: str, conversation_id: str, seq: int, delta: str) -> dict[str, Any]:
    """A chunk; its keys in this order, ``delta`` last (:func:`chunk_delta_json` relies on it)."""
    return {"type": CHUNK, "message_id": message_id, "conversation_id": conversation_id,
            "seq": seq, "delta": delta}


_CHUNK_START = b'{"type":"chunk","message_id":"'


def chunk_delta_json(raw: bytes, seq: int) -> bytes | None:
    """The JSON of the ``delta`` of the compact chunk ``raw`` whose ``seq`` is ``seq``, cut out
    of it without parsing (a ``/v1`` stream puts it into its own chunk object as it is), or None
    when ``raw`` is not laid out as :func:`chunk` and ``json.dumps(..., separators=(",", ":"))``
    make it. Only ids and the seq precede ``"delta":``, so the first ``,"seq":N,"delta":`` is the
    key's."""
    marker = b',"seq":%d,"delta":' % seq
    at = raw.find(marker)
    if at < 0 or not raw.startswith(_CHUNK_START) or not raw.endswith(b"}"):
        return None
    return raw[at + len(marker):-1]


def created(message: Message, client_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": CREATED, "conversation_id": str(message.conversation_id),
                             "message": message_json(message)}
    if client_id is not None:
        event["client_id"] = client_id
    return event


def terminal(message: Message, usage: dict[str, int] | None = None,
             finish_reason: str | None = None) -> dict[str, Any]:
    """``message.completed`` for complete/cancelled, ``message.failed`` for failed/interrupted.

    Both carry the final ``status``, ``last_seq`` and the whole message, so a client that
    missed chunks can still show the right text. The error code is the row's ``error_code``
    (``interrupted`` or ``failed`` by status for rows that have none). ``finish_reason`` (the
    provider's: ``stop``, ``length``...) is added to ``message.completed`` when known.
    """
    base = {"message_id": str(message.id), "conversation_id": str(message.conversation_id),
            "status": message.status, "last_seq": message.last_seq,
            "message": message_json(message)}
    if message.status in (MessageStatus.COMPLETE, MessageStatus.CANCELLED):
        completed = {"type": COMPLETED, **base, "usage": usage or {}}
        if finish_reason is not None:
            completed["finish_reason"] = finish_reason
        return completed
    ended = MessageStatus.INTERRUPTED if message.status == MessageStatus.INTERRUPTED else MessageStatus.FAILED
    code = message.error_code or ended.value
    return {"type": FAILED, **base,
            "error": {"code": code, "message": message.error or "generation failed"}}


def tool(kind: str, execution: dict[str, Any], *, conversation_id: str, seq: int) -> dict[str, Any]:
    """``tool.call``, ``tool.approval_required`` or ``tool.result`` of a call
    (``execution`` is its :func:`bestchat.serializers.tool_execution_json`). It is part of its
    message's stream: ``seq`` is the message's last chunk before it (the event is not a chunk
    and takes no ``seq`` of its own; a replay from any ``after_seq`` includes it)."""
    return {"type": kind, "message_id": execution["message_id"], "conversation_id": conversation_id,
            "seq": seq, "execution": execution}


def typing(conversation_id: str, user: dict[str, Any]) -> dict[str, Any]:
    return {"type": TYPING, "conversation_id": conversation_id, "user": user}


def conversation_deleted(conversation_id: str) -> dict[str, Any]:
    return {"type": CONVERSATION_DELETED, "conversation_id": conversation_id}


def conversation_updated(conversation_json: dict[str, Any]) -> dict[str, Any]:
    return {"type": CONVERSATION_UPDATED, "conversation_id": conversation_json["id"],
            "conversation": conversation_json}
