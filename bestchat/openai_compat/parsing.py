"""Reading a ``POST /v1/chat/completions`` body into a :class:`ChatRequest`, or a 400.

Supported: ``model``, ``messages`` (``system``/``developer``, ``user``, ``assistant`` (with
``tool_calls``), ``tool``; content as a string or a list of text parts), ``tools``,
``tool_choice``, ``parallel_tool_calls``, ``stream``, ``stream_options.include_usage``,
``temperature``, ``top_p``, ``max_tokens``/``max_completion_tokens``, ``n`` = 1; a user
message's content may also hold ``image_url`` parts (an http(s) URL, or a base64 ``data:``
URL of a PNG, JPEG, GIF or WebP). Requests that
need what this endpoint cannot do (``n`` > 1, the legacy ``functions``/``function_call``,
logprobs, audio and file parts) are refused with a 400 naming the ``param``, and so is every
malformed tool, tool choice, tool call or tool message; every other field is ignored, as
OpenAI ignores fields it does not know. The body is read as every JSON body is
(:func:`bestchat.validation.request_json`): sent as ``application/json`` (else 415), at
most ``MAX_JSON_DEPTH`` levels deep, no text the database cannot store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bestchat.errors import Invalid
from bestchat.providers.base import ProviderOptions
from bestchat.services.client_tools import TOOL_CALLS, tool_result_part
from bestchat.services.conversations import TranscriptMessage
from bestchat.validation import MAX_ATTACHMENTS, request_json

SYSTEM_ROLES = ("system", "developer")
ROLES = (*SYSTEM_ROLES, "user", "assistant", "tool")
MODEL_MAX = 200
# Tools: OpenAI's own limits on their count and names; bounds on the rest of their size.
TOOLS_MAX = 128
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_DESCRIPTION_MAX = 8_000
TOOL_PARAMETERS_MAX = 64_000  # characters of a tool's parameters schema, as JSON
TOOL_CALLS_MAX = 128  # calls in one assistant message
TOOL_CALL_ID_MAX = 256
TOOL_ARGUMENTS_MAX = 100_000  # characters of one call's arguments
TOOL_CHOICES = ("none", "auto", "required")
# Images in user messages: an http(s) URL (at most this long) or a base64 data: URL of these types.
IMAGE_URL_MAX = 2048
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
DATA_URL = re.compile(r"data:([a-z/+.-]+);base64,")


class InvalidRequest(Invalid):
    """An ``invalid_request_error`` about one request field (``param``, OpenAI's name for it)."""

    def __init__(self, message: str, param: str | None, code: str = "invalid_field"):
        super().__init__(code, message, param=param)


@dataclass(frozen=True)
class ChatRequest:
    """What a chat completion request asks for. ``transcript`` holds the non-system messages,
    ending with a user or a tool message; ``options`` the generation options given; ``tools``
    the tools offered to the model for the client to run (None: none) and ``tool_choice`` as
    given (None: not given)."""

    model: str
    transcript: list[TranscriptMessage]
    system_prompt: str | None
    options: dict[str, Any]
    stream: bool
    include_usage: bool
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


def read_chat_request() -> ChatRequest:
    """The current request's body as a :class:`ChatRequest`, or the domain error refusing it
    (:class:`~bestchat.errors.Invalid`, :class:`~bestchat.errors.UnsupportedMediaType`)."""
    return parse_chat_request(request_json())


def parse_chat_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", None, "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > MODEL_MAX:
        raise InvalidRequest("'model' must be a model id such as 'demo/demo' (see GET /v1/models)",
                             "model", "missing_field" if model is None else "invalid_field")
    _refuse_unsupported(body)
    system, transcript = _messages(body.get("messages"))
    tools = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    _flag(body, "parallel_tool_calls")  # accepted: several calls in one answer are passed on
    stream = _flag(body, "stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise InvalidRequest("'stream_options' must be an object", "stream_options")
    return ChatRequest(model=model.strip(), transcript=transcript,
                       system_prompt="\n\n".join(system) or None, options=_options(body),
                       stream=stream, include_usage=_flag(stream_options, "include_usage",
                                                          "stream_options.include_usage"),
                       tools=tools, tool_choice=tool_choice)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise InvalidRequest("only n=1 is supported", "n", "unsupported")
    for name in ("functions", "function_call"):
        if body.get(name) is not None:
            raise InvalidRequest(f"'{name}' (legacy function calling) is not supported: use 'tools' and "
                                 "'tool_choice'", name, "unsupported")
    if body.get("logprobs"):
        raise InvalidRequest("logprobs are not supported", "logprobs", "unsupported")


def _messages(raw: Any) -> tuple[list[str], list[TranscriptMessage]]:
    """The system texts and the transcript of ``messages``."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("'messages' must be a non-empty list", "messages",
                             "missing_field" if raw is None else "invalid_field")
    system: list[str] = []
    transcript: list[TranscriptMessage] = []
    unanswered: set[str] = set()  # the ids of the last assistant message's calls not yet answered
    calls_at = ""  # where that message is
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object", where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(f"'{where}.role' must be system, developer, user, assistant or tool",
                                 f"{where}.role")
        if role == "assistant" and message.get("function_call") is not None:
            raise InvalidRequest("legacy 'function_call' is not supported: use 'tool_calls'",
                                 f"{where}.function_call", "unsupported")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"'{where}.tool_call_id' must be the id of the call it answers",
                                     f"{where}.tool_call_id", "missing_field" if call_id is None else "invalid_field")
            if call_id not in unanswered:
                raise InvalidRequest(f"'{where}' must answer a call of the assistant message before it",
                                     f"{where}.tool_call_id")
            unanswered.discard(call_id)
            transcript.append(TranscriptMessage("tool", _text(message.get("content"), f"{where}.content"),
                                                [tool_result_part(call_id)]))
            continue
        calls = _tool_calls(message.get("tool_calls"), f"{where}.tool_calls") if role == "assistant" else []
        images: list[dict[str, Any]] = []
        if calls and message.get("content") is None:
            text = ""
        else:
            text, images = _content(message.get("content"), f"{where}.content", images=role == "user")
        if role in SYSTEM_ROLES:
            system.append(text)
            continue
        _check_answered(unanswered, calls_at)
        unanswered, calls_at = {call["id"] for call in calls}, f"{where}.tool_calls"
        transcript.append(TranscriptMessage(role, text, [{"type": TOOL_CALLS, "tool_calls": calls}] if calls else images))
    _check_answered(unanswered, calls_at)
    if not transcript or transcript[-1].role not in ("user", "tool"):
        raise InvalidRequest("the last non-system message must be a user message (or a tool message "
                             "with the result of a call)", "messages")
    return system, transcript


def _check_answered(unanswered: set[str], where: str) -> None:
    """Every call of an assistant message is answered by a tool message right after it."""
    if unanswered:
        raise InvalidRequest(f"'{where}': each call needs a tool message with its result right after "
                             f"this message (none for {sorted(unanswered)[0]!r})", where)


def _tool_calls(raw: Any, where: str) -> list[dict[str, Any]]:
    """An assistant message's ``tool_calls`` in OpenAI's shape (none: an empty list)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > TOOL_CALLS_MAX:
        raise InvalidRequest(f"'{where}' must be a list of at most {TOOL_CALLS_MAX} tool calls", where)
    calls: list[dict[str, Any]] = []
    for index, call in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(call, dict):
            raise InvalidRequest(f"'{at}' must be an object", at)
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id or len(call_id) > TOOL_CALL_ID_MAX:
            raise InvalidRequest(f"'{at}.id' must be a string of 1 to {TOOL_CALL_ID_MAX} characters", f"{at}.id",
                                 "missing_field" if call_id is None else "invalid_field")
        if call.get("type", "function") != "function":
            raise InvalidRequest(f"'{at}.type' must be 'function'", f"{at}.type")
        function = call.get("function")
        if not isinstance(function, dict):
            raise InvalidRequest(f"'{at}.function' must be an object", f"{at}.function",
                                 "missing_field" if function is None else "invalid_field")
        name = _tool_name(function.get("name"), f"{at}.function.name")
        arguments = function.get("arguments")
        if not isinstance(arguments, str) or len(arguments) > TOOL_ARGUMENTS_MAX:
            raise InvalidRequest(f"'{at}.function.arguments' must be a JSON text of at most "
                                 f"{TOOL_ARGUMENTS_MAX} characters", f"{at}.function.arguments",
                                 "missing_field" if arguments is None else "invalid_field")
        if call_id in (each["id"] for each in calls):
            raise InvalidRequest(f"'{at}.id' repeats the id of another call", f"{at}.id")
        calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
    return calls


def _tools(raw: Any) -> list[dict[str, Any]] | None:
    """``tools``, each checked (``{"type": "function", "function": {"name", "description"?,
    "parameters"?}}``) and kept as given; None when there are none."""
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list) or len(raw) > TOOLS_MAX:
        raise InvalidRequest(f"'tools' must be a list of at most {TOOLS_MAX} tools", "tools")
    names: set[str] = set()
    for index, tool in enumerate(raw):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"'{where}' must be an object", where)
        if tool.get("type") != "function":
            raise InvalidRequest(f"'{where}.type' must be 'function'", f"{where}.type",
                                 "missing_field" if tool.get("type") is None else "invalid_field")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidRequest(f"'{where}.function' must be an object", f"{where}.function",
                                 "missing_field" if function is None else "invalid_field")
        name = _tool_name(function.get("name"), f"{where}.function.name")
        if name in names:
            raise InvalidRequest(f"'{where}.function.name': another tool is named '{name}'",
                                 f"{where}.function.name")
        names.add(name)
        description = function.get("description")
        if description is not None and (not isinstance(description, str)
                                        or len(description) > TOOL_DESCRIPTION_MAX):
            raise InvalidRequest(f"'{where}.function.description' must be a string of at most "
                                 f"{TOOL_DESCRIPTION_MAX} characters", f"{where}.function.description")
        parameters = function.get("parameters")
        if parameters is not None and (not isinstance(parameters, dict)
                                       or len(json.dumps(parameters)) > TOOL_PARAMETERS_MAX):
            raise InvalidRequest(f"'{where}.function.parameters' must be a JSON Schema object of at most "
                                 f"{TOOL_PARAMETERS_MAX} characters", f"{where}.function.parameters")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidRequest(f"'{where}.function.strict' must be a boolean", f"{where}.function.strict")
    return raw


def _tool_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise InvalidRequest(f"'{where}' must be 1 to 64 letters, digits, '_' or '-'", where,
                             "missing_field" if name is None else "invalid_field")
    return name


def _tool_choice(raw: Any, tools: list[dict[str, Any]] | None) -> Any:
    """``tool_choice`` as given, once checked: ``none``, ``auto``, ``required`` or
    ``{"type": "function", "function": {"name"}}`` naming one of ``tools``. Without tools only
    ``none`` and ``auto`` are accepted (and mean nothing); None when not given."""
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in TOOL_CHOICES:
            raise InvalidRequest("'tool_choice' must be 'none', 'auto', 'required' or a function",
                                 "tool_choice")
        if raw == "required" and tools is None:
            raise InvalidRequest("'tool_choice' 'required' needs 'tools'", "tool_choice")
        return raw if tools is not None else None
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("type") != "function" or not isinstance(function, dict):
        raise InvalidRequest("'tool_choice' must be 'none', 'auto', 'required' or "
                             "{\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice")
    name = function.get("name")
    if not any(tool["function"]["name"] == name for tool in tools or ()):
        raise InvalidRequest("'tool_choice.function.name' must name one of the 'tools'",
                             "tool_choice.function.name")
    return {"type": "function", "function": {"name": name}}


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or the text parts of a list, joined by newlines."""
    text, _images = _content(content, where, images=False)
    return text


def _content(content: Any, where: str, *, images: bool) -> tuple[str, list[dict[str, Any]]]:
    """A message's text (a string, or the text parts of a list joined by newlines) and, when
    ``images`` are accepted (user messages), its image parts: ``{"type": "image_url", "url"}``
    for an http(s) URL (passed to the model as is), ``{"type": "image_data", "mime", "data"}``
    for a ``data:`` URL (stored as the user's upload before the answer starts)."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or a list of content parts", where)
    texts: list[str] = []
    found: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and images:
            found.append(_image(part.get("image_url"), f"{where}[{index}].image_url"))
        else:
            allowed = "text and image_url parts" if images else "text parts"
            raise InvalidRequest(f"'{where}[{index}]': only {allowed} are supported here", where, "unsupported")
    if len(found) > MAX_ATTACHMENTS:
        raise InvalidRequest(f"'{where}': at most {MAX_ATTACHMENTS} images", where)
    return "\n".join(texts), found


def _image(raw: Any, where: str) -> dict[str, Any]:
    url = raw.get("url") if isinstance(raw, dict) else raw
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"'{where}.url' must be an http(s) or data: URL", f"{where}.url")
    if url.startswith("data:"):
        match = DATA_URL.match(url)
        if match is None or match.group(1) not in IMAGE_TYPES:
            raise InvalidRequest(f"'{where}.url': a data: URL must be base64 {', '.join(IMAGE_TYPES)}",
                                 f"{where}.url")
        return {"type": "image_data", "mime": match.group(1), "data": url[match.end():]}
    if not url.startswith(("https://", "http://")) or len(url) > IMAGE_URL_MAX:
        raise InvalidRequest(f"'{where}.url' must be an http(s) URL of at most {IMAGE_URL_MAX} characters "
                             "or a data: URL", f"{where}.url")
    return {"type": "image_url", "url": url}


def _flag(body: dict[str, Any], name: str, param: str | None = None) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"'{param or name}' must be a boolean", param or name)
    return bool(value)


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """temperature, top_p and max tokens, checked against the providers' common bounds."""
    tokens_param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    given = {"temperature": body.get("temperature"), "top_p": body.get("top_p"),
             "max_tokens": body.get(tokens_param)}
    options = {name: value for name, value in given.items() if value is not None}
    try:
        ProviderOptions.model_validate(options, strict=True)
    except ValidationError as error:
        detail = error.errors()[0]
        param = tokens_param if detail["loc"][0] == "max_tokens" else str(detail["loc"][0])
        raise InvalidRequest(f"'{param}': {detail['msg']}", param) from None
    return options
