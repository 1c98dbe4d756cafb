"""Messages (``/api/v1/messages/<id>``): read, edit (a new branch), cancel, regenerate, and
the Server-Sent Events stream of an answer.

The stream sends the WebSocket's events for that one message (``chunk`` with SSE ``id`` =
``seq``, then ``message.completed`` or ``message.failed``) and ends. ``?after=<seq>`` or the
``Last-Event-ID`` header resumes after that chunk. Each event's SSE bytes are built once per
web process and shared by every stream following the answer (:func:`_sse_event`), and the
events queued together go out in one write (:func:`bestchat.streaming.sse.answer_stream`).
"""

from __future__ import annotations

from flask import Response, g, request

from bestchat.api import bp
from bestchat.api.openapi import documented, nullable, obj, query, ref, string
from bestchat.errors import Invalid
from bestchat.security.authn import login_required
from bestchat.serializers import message_json
from bestchat.services.conversations import ConversationManager
from bestchat.streaming import events, sse
from bestchat.streaming.bus import Delivery
from bestchat.streaming.follow import follow_answer
from bestchat.validation import MAX_INT, field, int_arg, json_body, parse_uuid

# Milliseconds a client of the stream waits before reconnecting.
RECONNECT_MS = 1000


@bp.get("/messages/<message_id>")
@documented(responses={200: ref("Message")})
@login_required
def get_message(message_id: str):
    """One message."""
    return message_json(ConversationManager(g.user).message(parse_uuid(message_id, "message")))


@bp.patch("/messages/<message_id>")
@documented(body=obj({"content": string(minLength=1), "model": nullable(string(200))}, ("content",)),
            responses={202: ref("Exchange"), 503: ref("Error")})
@login_required
def edit_message(message_id: str):
    """Edit a user message: a new branch (sibling of it) with a new answer; the old branch
    stays readable. Body: {content, model?}. 202 {user_message, assistant_message}."""
    body = json_body()
    question, answer = ConversationManager(g.user).edit(
        parse_uuid(message_id, "message"), field(body, "content", strip=False),
        model=field(body, "model", required=False, max_length=200))
    return {"user_message": message_json(question), "assistant_message": message_json(answer)}, 202


@bp.post("/messages/<message_id>/cancel")
@documented(responses={200: obj({"message": ref("Message")}, ("message",))})
@login_required
def cancel_message(message_id: str):
    """Stop generating this answer (its partial content is kept). 200 {message}."""
    return {"message": message_json(ConversationManager(g.user).cancel(parse_uuid(message_id, "message")))}


@bp.post("/messages/<message_id>/regenerate")
@documented(body=obj({"model": nullable(string(200))}), body_required=False,
            responses={202: obj({"assistant_message": ref("Message")}, ("assistant_message",)), 503: ref("Error")})
@login_required
def regenerate_message(message_id: str):
    """A new answer in place of this one, as a sibling branch. Body: {model?}. 202 {assistant_message}."""
    body = json_body() if request.content_length else {}
    answer = ConversationManager(g.user).regenerate(
        parse_uuid(message_id, "message"), model=field(body, "model", required=False, max_length=200))
    return {"assistant_message": message_json(answer)}, 202


@bp.get("/messages/<message_id>/stream")
@documented(parameters=[query("after", {"type": "integer", "minimum": 0, "maximum": MAX_INT},
                              "resume after this chunk seq"),
                        {"name": "Last-Event-ID", "in": "header", "required": False,
                         "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INT}}],
            responses={200: {"x-media": "text/event-stream", **ref("SseEvent")}})
@login_required
def stream_message(message_id: str):
    """The answer's events as ``text/event-stream``; ``?after=<seq>`` or ``Last-Event-ID`` resumes."""
    message = ConversationManager(g.user).message(parse_uuid(message_id, "message"))
    after = _last_event_id()
    if after is None:
        after = int_arg("after", 0)
    key = str(message.id)
    subscriber = follow_answer(message, after)
    body = sse.answer_stream(subscriber, key, _event, first=[sse.retry(RECONNECT_MS)])
    return Response(body, mimetype="text/event-stream", headers=sse.HEADERS)


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Invalid("invalid_parameter", "Last-Event-ID must be a chunk seq") from None
    if not 0 <= value <= MAX_INT:
        raise Invalid("invalid_parameter", "Last-Event-ID must be a seq from 0 to 2**63-1")
    return value


def _event(delivery: Delivery) -> list[bytes]:
    return [delivery.encoded(_sse_event)]


def _sse_event(delivery: Delivery) -> bytes:
    """The event as sent on the WebSocket, its ``seq`` as the SSE ``id`` of a chunk."""
    seq = delivery.seq if delivery.kind == events.CHUNK else None
    return sse.frame_bytes(delivery.raw, event=delivery.kind, id=seq)
