"""Reading a ``POST /v1/chat/completions`` body into a :class:`ChatRequest`, or a 400.

Supported: ``model``, ``messages`` (``system``/``developer``, ``user``, ``assistant``; content
as a string or a list of text parts), ``stream``, ``stream_options.include_usage``,
``temperature``, ``top_p``, ``max_tokens``/``max_completion_tokens``, ``n`` = 1. Requests that
need what this endpoint cannot do (``n`` > 1, tools or functions, logprobs, tool messages,
image/audio parts) are refused with a 400 naming the ``param``; every other field is ignored,
as OpenAI ignores fields it does not know. The body is read as every JSON body is
(:func:`bestchat.validation.request_json`): sent as ``application/json`` (else 415), at
most ``MAX_JSON_DEPTH`` levels deep, no text the database cannot store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bestchat.errors import Invalid
from bestchat.providers.base import ProviderOptions
from bestchat.validation import request_json

SYSTEM_ROLES = ("system", "developer")
MODEL_MAX = 200


class InvalidRequest(Invalid):
    """An ``invalid_request_error`` about one request field (``param``, OpenAI's name for it)."""

    def __init__(self, message: str, param: str | None, code: str = "invalid_field"):
        super().__init__(code, message, param=param)


@dataclass(frozen=True)
class ChatRequest:
    """What a chat completion request asks for. ``transcript`` holds the non-system messages as
    ``(role, content)``, ending with a user message; ``options`` the generation options given."""

    model: str
    transcript: list[tuple[str, str]]
    system_prompt: str | None
    options: dict[str, Any]
    stream: bool
    include_usage: bool


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
    stream = _flag(body, "stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise InvalidRequest("'stream_options' must be an object", "stream_options")
    return ChatRequest(model=model.strip(), transcript=transcript,
                       system_prompt="\n\n".join(system) or None, options=_options(body),
                       stream=stream, include_usage=_flag(stream_options, "include_usage",
                                                          "stream_options.include_usage"))


def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise InvalidRequest("only n=1 is supported", "n", "unsupported")
    for name in ("tools", "functions"):
        if body.get(name):
            raise InvalidRequest(f"'{name}' (function calling) is not supported by this endpoint",
                                 name, "unsupported")
    if body.get("logprobs"):
        raise InvalidRequest("logprobs are not supported", "logprobs", "unsupported")


def _messages(raw: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """The system texts and the transcript of ``messages``."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("'messages' must be a non-empty list", "messages",
                             "missing_field" if raw is None else "invalid_field")
    system: list[str] = []
    transcript: list[tuple[str, str]] = []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object", where)
        role = message.get("role")
        if role not in (*SYSTEM_ROLES, "user", "assistant"):
            raise InvalidRequest(f"'{where}.role' must be system, developer, user or assistant "
                                 "(tool messages are not supported)", f"{where}.role")
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            raise InvalidRequest("assistant tool calls are not supported", f"{where}.tool_calls",
                                 "unsupported")
        text = _text(message.get("content"), f"{where}.content")
        if role in SYSTEM_ROLES:
            system.append(text)
        else:
            transcript.append((role, text))
    if not transcript or transcript[-1][0] != "user":
        raise InvalidRequest("the last non-system message must be a user message", "messages")
    return system, transcript


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or the text parts of a list, joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequest("only text content parts are supported", where, "unsupported")
            texts.append(part["text"])
        return "\n".join(texts)
    raise InvalidRequest(f"'{where}' must be a string or a list of text parts", where)


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
