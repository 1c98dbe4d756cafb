"""The routes of ``/v1``: the model list and chat completions.

A chat completion is a new conversation of the token's user, made by
:meth:`ConversationManager.start_from_transcript` (the chat's own pipeline: persisted
messages, a pending answer, the generation job), then followed on the stream bus. The model is
resolved before anything is stored, so a bad request changes nothing.

A streaming client that disconnects before the end cancels its answer (as in the web chat's
stop button); the partial answer stays in the conversation, ``cancelled``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from flask import Response, current_app, g, request, stream_with_context

from bestchat.api.openapi import array, documented, nullable, obj, ref, string
from bestchat.errors import Invalid, NotFound
from bestchat.extensions import db
from bestchat.models import User
from bestchat.openai_compat import bp
from bestchat.openai_compat.images import stored_images
from bestchat.openai_compat.parsing import MODEL_MAX, TOOLS_MAX, InvalidRequest, read_chat_request
from bestchat.openai_compat.replies import Completion, failure_response, stream, wait_for_end
from bestchat.providers import registry
from bestchat.providers.base import ProviderError, ProviderOptions
from bestchat.providers.registry import ENABLED_CONFIG_VALUES, ConfigValues
from bestchat.security.authn import login_required
from bestchat.services import groups
from bestchat.services.client_tools import client_tools_part
from bestchat.services.conversations import ConversationManager
from bestchat.streaming import events, sse
from bestchat.streaming.follow import follow_answer

log = logging.getLogger(__name__)

# Marks, in the conversation's settings, the conversations made through this API.
CREATED_VIA = "openai_api"
CONVERSATION_HEADER = "X-BestChat-Conversation-Id"

# The request body of a chat completion, for the OpenAPI document; the option bounds are
# ProviderOptions' own (the ones parsing checks them against).
_OPTIONS = ProviderOptions.model_json_schema()["properties"]
_TEXT_PARTS = array(obj({"type": string(enum=["text"]), "text": string()}, ("type", "text")))
_FUNCTION_CALL = obj({"id": string(), "type": string(enum=["function"]),
                      "function": obj({"name": string(), "arguments": string()}, ("name", "arguments"))},
                     ("id", "function"))
_TOOL = obj({"type": string(enum=["function"]),
             "function": obj({"name": string(64, pattern="^[A-Za-z0-9_-]{1,64}$"), "description": string(),
                              "parameters": {"type": "object"}, "strict": nullable({"type": "boolean"})},
                             ("name",))}, ("type", "function"))
CHAT_REQUEST = obj({
    "model": string(MODEL_MAX, minLength=1),
    "messages": {**array(obj({"role": string(enum=["system", "developer", "user", "assistant", "tool"]),
                              "content": {"anyOf": [string(), _TEXT_PARTS, {"type": "null"}]},
                              "tool_calls": array(_FUNCTION_CALL), "tool_call_id": string()}, ("role",))),
                 "minItems": 1},
    "tools": {**array(_TOOL), "maxItems": TOOLS_MAX},
    "tool_choice": {"anyOf": [string(enum=["none", "auto", "required"]),
                              obj({"type": string(enum=["function"]), "function": obj({"name": string()}, ("name",))},
                                  ("type", "function")),
                              {"type": "null"}]},
    "parallel_tool_calls": nullable({"type": "boolean"}),
    "stream": nullable({"type": "boolean"}),
    "stream_options": nullable(obj({"include_usage": nullable({"type": "boolean"})})),
    "temperature": _OPTIONS["temperature"], "top_p": _OPTIONS["top_p"],
    "max_tokens": _OPTIONS["max_tokens"], "max_completion_tokens": _OPTIONS["max_tokens"],
    "n": nullable({"type": "integer", "enum": [1]}),
}, ("model", "messages"))


@bp.get("/models")
@documented(responses={200: obj({"object": string(enum=["list"]), "data": array(ref("OpenAIModel"))},
                                ("object", "data"))})
@login_required
def list_models():
    """The models this token's user may use, as OpenAI's model list."""
    return {"object": "list", "data": [_model_object(m) for m in registry.available_models(g.user)]}


@bp.get("/models/<path:model>")
@documented(responses={200: ref("OpenAIModel")})
@login_required
def get_model(model: str):
    """One model by id (e.g. ``demo/demo``); 404 when this user may not use it."""
    for available in registry.available_models(g.user):
        if available["id"] == model:
            return _model_object(available)
    raise NotFound(code="model_not_found", message=f"model '{model}' does not exist or is not available to you")


@bp.post("/chat/completions")
@documented(body=CHAT_REQUEST, responses={
    200: {"content": {"application/json": obj({"id": string(), "object": string(enum=["chat.completion"]),
                                                "choices": array({"type": "object"})}, ("id", "object", "choices")),
                      # with stream: each event's data is a chat.completion.chunk, then [DONE]
                      "text/event-stream": obj({"data": string()}, ("data",))}},
    503: ref("OpenAIError")})
@login_required
def chat_completions():
    """Create a chat completion (OpenAI-compatible), streamed as server-sent chunks with ``stream``.

    Body: {model, messages, tools?, tool_choice?, parallel_tool_calls?, stream?,
    stream_options?.include_usage, temperature?, top_p?, max_tokens? | max_completion_tokens?,
    n? (1 only)}; other fields are ignored. Each call is stored as a new conversation of the
    token's user (its id in ``X-BestChat-Conversation-Id``). With ``tools`` the model may answer
    with ``tool_calls`` (``finish_reason`` ``tool_calls``): the client runs them and sends the
    results back as ``tool`` messages; the server runs nothing.
    """
    request.max_content_length = current_app.config["OPENAI_MAX_BODY_BYTES"]
    chat = read_chat_request()
    refused = _refusal_of_model(g.user, chat.model)
    if refused is not None:
        return refused
    user = g.user
    # Read before follow_answer ends the session's transaction, which expires every object
    # the session holds: reading them after it would load them again, one query each.
    user_id = user.id
    answer = ConversationManager(user).start_from_transcript(
        stored_images(user, chat.transcript), model=chat.model, system_prompt=chat.system_prompt,
        settings={**chat.options, "created_via": CREATED_VIA},
        # Every /v1 answer carries the client's tools (maybe none), so the server's own tools
        # are never offered to a /v1 caller: it runs what it asked for itself.
        answer_parts=[client_tools_part(chat.tools or [], chat.tool_choice if chat.tools else None)])
    answer_id, message_id, conversation_id = answer.id, str(answer.id), str(answer.conversation_id)
    subscriber = follow_answer(answer)
    completion = Completion(f"chatcmpl-{message_id}", int(time.time()), chat.model)
    headers = {CONVERSATION_HEADER: conversation_id}
    if not chat.stream:
        terminal = wait_for_end(subscriber, message_id)
        if terminal["type"] == events.FAILED:
            return failure_response(terminal["error"]["code"], terminal["error"]["message"])
        return completion.completion(terminal), 200, headers
    body = stream(subscriber, message_id, completion, include_usage=chat.include_usage,
                  on_abandon=lambda: _cancel(user_id, answer_id))
    return Response(stream_with_context(body), mimetype="text/event-stream", headers={**headers, **sse.HEADERS})


def _refusal_of_model(user: User, model: str) -> Response | None:
    """The answer refusing ``model`` when it cannot be served to ``user`` (the same resolution
    as the generation's), else None: 400 for an unknown model, a provider's failure as a
    failed generation's.

    The user's enabled configs are read as plain rows (the columns the resolution reads, as
    the generation's claim reads them), not as ORM objects, and what the user's groups allow
    is taken from the loaded user (whether an admin), so the check costs one query."""
    configs = [ConfigValues(*row) for row in db.session.execute(ENABLED_CONFIG_VALUES, {"user_id": user.id})]
    try:
        registry.resolve_targets(user.id, model, configs, groups.access_for(user))
    except ProviderError as error:
        return failure_response(error.code, error.message)
    except Invalid as error:
        raise InvalidRequest(error.message, "model", error.code) from None
    return None


def _cancel(user_id: uuid.UUID, message_id: uuid.UUID) -> None:
    """The client left mid-stream: stop its answer; never raises (the client is gone anyway).
    Runs in the response's own context, so the user is loaded again."""
    try:
        ConversationManager(db.session.get(User, user_id)).cancel(message_id)
    except Exception:  # noqa: BLE001 - must not break the server's cleanup of the response
        log.exception("could not cancel %s after its client disconnected", message_id)


def _model_object(model: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's model object; ``created`` is unknown for BestChat models, so 0."""
    return {"id": model["id"], "object": "model", "created": 0, "owned_by": model["provider"]}
