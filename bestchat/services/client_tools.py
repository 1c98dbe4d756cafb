"""Tools a client runs itself: what an OpenAI-compatible (``/v1``) request offers the model,
and the calls the model makes, as a message's ``parts``.

A ``/v1`` request with ``tools`` stores them on its pending answer as one part,
``{"type": "client_tools", "tools": [...], "tool_choice": ...}`` (the request's own OpenAI
shapes). Its generation offers exactly those tools to the model, runs none of them, and ends
the answer ``complete`` with the model's calls appended as ``{"type": "tool_calls",
"tool_calls": [...]}`` (OpenAI's shape: ``{"id", "type": "function", "function": {"name",
"arguments": <JSON text>}}``), which ``/v1`` returns to the client. The client runs them and
sends the results back as ``tool`` messages in its next request.

The same ``tool_calls`` part marks the assistant messages of a transcript that called tools,
and ``{"type": "tool_result", "tool_call_id": ...}`` the ``tool`` messages answering them;
:func:`bestchat.context.items.build_items` and :func:`bestchat.context.render.render` turn both back
into OpenAI messages for the model.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable

from bestchat.providers.base import ToolCall

CLIENT_TOOLS = "client_tools"
TOOL_CALLS = "tool_calls"
TOOL_RESULT = "tool_result"
FINISH_REASON = "tool_calls"  # how an answer that ends with calls for the client ends


def client_tools_part(tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any]:
    """The part a ``/v1`` answer carries when its request offers ``tools``."""
    return {"type": CLIENT_TOOLS, "tools": tools, "tool_choice": tool_choice}


def client_tools_of(parts: Iterable[Any] | None) -> tuple[list[dict[str, Any]], Any] | None:
    """The tools (OpenAI's ``tools``) and ``tool_choice`` (None: the provider's default) that
    an answer's ``parts`` offer for the client to run, else None (the answer is not one of a
    ``/v1`` request with tools)."""
    for part in parts or ():
        if isinstance(part, dict) and part.get("type") == CLIENT_TOOLS:
            return list(part.get("tools") or []), part.get("tool_choice")
    return None


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    """One call in OpenAI's shape, its arguments as JSON text (and an id made here when the
    provider gave none: the client's result must name the call)."""
    return {"id": call.id or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}


def tool_calls_part(calls: Iterable[ToolCall]) -> dict[str, Any]:
    """The part recording the model's ``calls`` on its answer."""
    return {"type": TOOL_CALLS, "tool_calls": [tool_call_json(call) for call in calls]}


def tool_calls_of(parts: Iterable[Any] | None) -> list[dict[str, Any]]:
    """The calls (OpenAI's ``tool_calls``) a message's ``parts`` record; empty when none."""
    calls: list[dict[str, Any]] = []
    for part in parts or ():
        if isinstance(part, dict) and part.get("type") == TOOL_CALLS:
            calls.extend(part.get("tool_calls") or [])
    return calls


def tool_result_part(tool_call_id: str) -> dict[str, Any]:
    """The part of a ``tool`` message: which call it answers."""
    return {"type": TOOL_RESULT, "tool_call_id": tool_call_id}


def tool_call_id_of(parts: Iterable[Any] | None) -> str | None:
    """The call a ``tool`` message answers (from its :func:`tool_result_part`)."""
    for part in parts or ():
        if isinstance(part, dict) and part.get("type") == TOOL_RESULT:
            return part.get("tool_call_id")
    return None
