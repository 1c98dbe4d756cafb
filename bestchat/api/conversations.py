"""Conversations (``/api/v1/conversations``): CRUD, search, their messages, sending a message.

Thin: input is checked here, everything else is :class:`ConversationManager`.
"""

from __future__ import annotations

from typing import Any

from flask import g, request

from bestchat.api import bp
from bestchat.api.openapi import array, documented, fields_schema, nullable, obj, query, ref, string
from bestchat.errors import Invalid
from bestchat.security.authn import login_required
from bestchat.serializers import conversation_json, message_json, summary_json, tool_execution_json
from bestchat.services import tools
from bestchat.services.conversations import ConversationManager
from bestchat.validation import MAX_ATTACHMENTS, MAX_INT, field, int_arg, json_body, parse_uuid

# name -> (type, max length) of the conversation fields a client may set.
FIELDS: dict[str, tuple[type, int | None]] = {
    "title": (str, 200), "model": (str, 200), "system_prompt": (str, 100_000), "settings": (dict, None),
    "disabled_tools": (list, None), "context_strategy": ((str, list), 100),
}


def conversation_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The settable fields present in ``body``, type-checked (null clears a field)."""
    return {name: field(body, name, kind, required=False, max_length=max_length)
            for name, (kind, max_length) in FIELDS.items() if name in body}


@bp.get("/conversations")
@documented(parameters=[query("q", string(), "search titles and message text"),
                        query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                        query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT})],
            responses={200: obj({"conversations": array(ref("Conversation")), "has_more": {"type": "boolean"}},
                                ("conversations", "has_more"))})
@login_required
def list_conversations():
    """The user's conversations, most recently active first. ``?q=`` searches titles and
    message text; ``?limit=`` (max 200) and ``?offset=`` page. Returns {conversations, has_more}."""
    rows, has_more = ConversationManager(g.user).list_conversations(
        query=(request.args.get("q") or "").strip() or None,
        limit=int_arg("limit", 50, minimum=1, maximum=200), offset=int_arg("offset", 0))
    return {"conversations": [conversation_json(c) for c in rows], "has_more": has_more}


@bp.post("/conversations")
@documented(body=fields_schema(FIELDS), responses={201: ref("Conversation")})
@login_required
def create_conversation():
    """Create a conversation. Body: {title?, model?, system_prompt?, settings?}. 201.
    ``settings`` (provider options) are checked against the installed providers' options:
    400 ``unknown_setting`` or ``invalid_setting`` naming the setting, nothing stored."""
    conversation = ConversationManager(g.user).create(**conversation_fields(json_body()))
    return conversation_json(conversation), 201


@bp.get("/conversations/<conversation_id>")
@documented(responses={200: ref("Conversation")})
@login_required
def get_conversation(conversation_id: str):
    """One conversation."""
    return conversation_json(ConversationManager(g.user).get(parse_uuid(conversation_id, "conversation")))


@bp.patch("/conversations/<conversation_id>")
@documented(body=fields_schema(FIELDS), responses={200: ref("Conversation")})
@login_required
def update_conversation(conversation_id: str):
    """Rename or reconfigure. Body: any of {title, model, system_prompt, settings,
    disabled_tools}. New ``settings`` are checked as at creation, ``disabled_tools`` must name
    installed tools (400, nothing changed)."""
    changes = conversation_fields(json_body())
    conversation = ConversationManager(g.user).update(parse_uuid(conversation_id, "conversation"), **changes)
    return conversation_json(conversation)


@bp.delete("/conversations/<conversation_id>")
@documented(responses={204: None})
@login_required
def delete_conversation(conversation_id: str):
    """Delete a conversation and its messages (running answers are stopped). 204."""
    ConversationManager(g.user).delete(parse_uuid(conversation_id, "conversation"))
    return "", 204


@bp.get("/conversations/<conversation_id>/messages")
@documented(parameters=[query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                        query("before", string(format="uuid"), "a message id: the page before it")],
            responses={200: obj({"messages": array(ref("Message")),
                                 "siblings": {"type": "object", "additionalProperties": array(string())},
                                 "leaf_id": nullable(string(format="uuid")), "has_more": {"type": "boolean"},
                                "context_summaries": array(ref("ContextSummary"))},
                                ("messages", "siblings", "leaf_id", "has_more", "context_summaries"))})
@login_required
def list_messages(conversation_id: str):
    """Messages of every branch, newest page first, each page oldest to newest.

    ``?limit=`` (max 200); ``?before=<message id>`` for the previous page. Returns
    {messages, siblings, leaf_id, has_more}: ``siblings`` maps each message id to the ids
    sharing its parent (branches, oldest first); ``leaf_id`` ends the active branch. Each
    assistant message carries its ``tool_executions``, in the order they were made.
    ``context_summaries`` are the conversation's summaries (oldest first): each stands for
    the messages of its branch up to ``last_message_id`` in the prompts of later answers.
    """
    before = request.args.get("before")
    page = ConversationManager(g.user).messages(
        parse_uuid(conversation_id, "conversation"), limit=int_arg("limit", 50, minimum=1, maximum=200),
        before=parse_uuid(before, "message") if before else None)
    answers = [m.id for m in page["messages"] if m.role == "assistant"]
    calls = tools.executions_of_messages(answers) if answers else {}
    return {"messages": [_with_calls(m, calls) for m in page["messages"]], "siblings": page["siblings"],
            "leaf_id": str(page["leaf_id"]) if page["leaf_id"] else None, "has_more": page["has_more"],
            "context_summaries": [summary_json(row) for row in page["summaries"]]}


def _with_calls(message, calls: dict) -> dict:
    """``message_json``, plus an assistant message's tool calls."""
    data = message_json(message)
    if message.role == "assistant":
        data["tool_executions"] = [tool_execution_json(e) for e in calls.get(str(message.id), ())]
    return data


@bp.post("/conversations/<conversation_id>/messages")
@documented(body=obj({"content": string(minLength=1), "model": nullable(string(200)),
                      "attachments": nullable(array(string(format="uuid"))),
                      "parent_id": nullable(string(format="uuid")), "client_id": nullable(string(100))},
                     ("content",)),
            responses={202: ref("Exchange"), 503: ref("Error")})
@login_required
def send_message(conversation_id: str):
    """Send a message; its answer is generated on a worker. 202 {user_message, assistant_message}.

    Body: {content, model?, attachments? (upload ids), parent_id? (default: the newest
    message), client_id?}. Follow the answer on the WebSocket or at ``/messages/<id>/stream``.
    The answer is ``pending``, or ``queued`` while every generation slot is busy; when too many
    already wait, 503 ``overloaded`` (with Retry-After) and nothing is stored.
    """
    body = json_body()
    content = field(body, "content", strip=False)
    attachments = field(body, "attachments", list, required=False, default=[])
    if len(attachments) > MAX_ATTACHMENTS or not all(isinstance(item, str) for item in attachments):
        raise Invalid("invalid_field", f"'attachments' must be a list of at most {MAX_ATTACHMENTS} upload ids")
    parent = field(body, "parent_id", required=False)
    question, answer = ConversationManager(g.user).send(
        parse_uuid(conversation_id, "conversation"), content,
        model=field(body, "model", required=False, max_length=200),
        parent_id=parse_uuid(parent, "message") if parent else None, attachments=attachments,
        client_id=field(body, "client_id", required=False, max_length=100))
    return {"user_message": message_json(question), "assistant_message": message_json(answer)}, 202
