"""OpenAI's response objects, built from BestChat's stream events, and their delivery.

An answer is followed as REST's SSE endpoint follows one (:mod:`bestchat.streaming.follow`:
replay + live, each chunk exactly once) and streamed by the same writer
(:mod:`bestchat.streaming.sse`), with OpenAI's payloads. Streaming, each ``chunk`` event becomes
a ``chat.completion.chunk`` with ``delta.content``; ``message.completed`` becomes one chunk
per tool call the answer ends with (``delta.tool_calls``, when the model called the client's
tools), then the chunk with ``finish_reason`` (then the ``usage`` chunk when asked for, then
``data: [DONE]``), and ``message.failed`` an SSE ``data: {"error": ...}`` line before the stream
closes. Not streaming, the terminal event becomes one ``chat.completion`` (with
``message.tool_calls`` when there are calls) or the failure's error. The calls come from the
answer's parts, which the terminal event carries (:mod:`bestchat.services.client_tools`).

A streamed ``chunk`` is not parsed: the JSON of its ``delta``, cut out of the event's bytes
once per web process (:func:`bestchat.streaming.events.chunk_delta_json`, shared by every
``/v1`` stream of the answer), goes between the two constant halves of this completion's
``chat.completion.chunk`` object (:func:`_content_chunk`), which are encoded once per stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from flask import Response

from bestchat.error_responses import FAILED_GENERATION, headers_of, json_response, openai_body, status_of
from bestchat.errors import DomainError
from bestchat.services.client_tools import FINISH_REASON, tool_calls_of
from bestchat.streaming import events, sse
from bestchat.streaming.bus import Delivery
from bestchat.streaming.subscriber import Subscriber


# ---- errors ---------------------------------------------------------------------------------

def error_response(error: DomainError, status: int | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """``error`` in OpenAI's shape, with its status (or ``status``) and headers."""
    status = status or status_of(error)
    return json_response(openai_body(error, status), status, {**headers_of(error), **(headers or {})})


def failure_response(code: str, message: str) -> Response:
    """The answer to a failed generation (or to a model that cannot be served), with the
    status of :data:`~bestchat.error_responses.FAILED_GENERATION`. ``x-should-retry`` tells the
    openai SDK whether its automatic retries are worth it (each retry is a new conversation)."""
    status, retryable = FAILED_GENERATION.get(code, (500, False))
    return error_response(DomainError(code, message), status,
                          {"x-should-retry": "true" if retryable else "false"})


def failure_body(code: str, message: str) -> dict[str, Any]:
    """The error object of a failed generation, as a stream's last ``data:``."""
    status, _retryable = FAILED_GENERATION.get(code, (500, False))
    return openai_body(DomainError(code, message), status)


# ---- objects --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Completion:
    """One completion's identity, shared by every object sent for it."""

    id: str
    created: int
    model: str

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, *,
              with_usage: bool = False) -> dict[str, Any]:
        chunk = self._base("chat.completion.chunk", [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
        if with_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, terminal: dict[str, Any]) -> dict[str, Any]:
        return {**self._base("chat.completion.chunk", []), "usage": usage_of(terminal)}

    def completion(self, terminal: dict[str, Any]) -> dict[str, Any]:
        """The ``chat.completion`` for the answer's ``message.completed`` event."""
        content, calls = terminal["message"]["content"], tool_calls_of(terminal["message"].get("parts"))
        message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else content),
                                   "refusal": None}
        if calls:
            message["tool_calls"] = calls
        return {**self._base("chat.completion", [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason_of(terminal)}]),
            "usage": usage_of(terminal)}

    def _base(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": None, "choices": choices}


def finish_reason_of(terminal: dict[str, Any]) -> str:
    """The provider's reason; when unknown ``tool_calls`` for an answer with calls, else
    ``stop`` (also for an answer cancelled elsewhere)."""
    if terminal.get("finish_reason"):
        return terminal["finish_reason"]
    return FINISH_REASON if tool_calls_of(terminal["message"].get("parts")) else "stop"


def tool_call_deltas(terminal: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``delta`` of each streamed tool call of the answer: its ``index`` and the whole call."""
    return [{"tool_calls": [{"index": index, **call}]}
            for index, call in enumerate(tool_calls_of(terminal["message"].get("parts")))]


def usage_of(terminal: dict[str, Any]) -> dict[str, int]:
    usage = terminal.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# ---- delivery -------------------------------------------------------------------------------

def _ends(delivery: Delivery | None, message_id: str) -> bool:
    return (delivery is not None and delivery.message_id == message_id
            and delivery.kind in events.TERMINAL)


def wait_for_end(subscriber: Subscriber, message_id: str) -> dict[str, Any]:
    """Block until the answer ends; its terminal event."""
    try:
        while True:
            delivery = subscriber.next()
            if _ends(delivery, message_id):
                return delivery.event
    finally:
        subscriber.close()


def stream(subscriber: Subscriber, message_id: str, completion: Completion, *, include_usage: bool,
           on_abandon: Callable[[], None]) -> Iterator[str]:
    """The answer as OpenAI's SSE stream. ``on_abandon`` runs when the client goes away before
    the end (the generator is closed early)."""

    content_chunk = _content_chunk(completion, include_usage)

    def frames(delivery: Delivery) -> list[bytes | str]:
        if delivery.kind == events.CHUNK:
            return [content_chunk(delivery.encoded(_delta_json))]
        event = delivery.event
        if event["type"] == events.COMPLETED:
            last = [_data(completion.chunk(delta, with_usage=include_usage)) for delta in tool_call_deltas(event)]
            last.append(_data(completion.chunk({}, finish_reason_of(event), with_usage=include_usage)))
            if include_usage:
                last.append(_data(completion.usage_chunk(event)))
            return [*last, sse.frame("[DONE]")]
        if event["type"] == events.FAILED:
            return [_data(failure_body(event["error"]["code"], event["error"]["message"]))]
        return []

    first = _data(completion.chunk({"role": "assistant", "content": ""}, with_usage=include_usage))
    return sse.answer_stream(subscriber, message_id, frames, first=[first], on_abandon=on_abandon)


def _data(payload: dict[str, Any]) -> str:
    return sse.frame(json.dumps(payload, separators=(",", ":")))


# A one-character content whose JSON (``"\u0000"``) marks where a chunk's content goes.
_MARK, _MARK_JSON = "\x00", '"\\u0000"'


def _content_chunk(completion: Completion, include_usage: bool) -> Callable[[bytes], bytes]:
    """The SSE event of the completion's ``chat.completion.chunk`` whose ``delta.content`` is
    the given JSON: the object is encoded once, with a marker as its content, and split there."""
    text = json.dumps(completion.chunk({"content": _MARK}, with_usage=include_usage), separators=(",", ":"))
    parts = text.split(_MARK_JSON)
    if len(parts) != 2:  # the marker also in an id or the model's name: encode each chunk whole
        return lambda content: sse.frame_bytes(json.dumps(
            completion.chunk({"content": json.loads(content)}, with_usage=include_usage),
            separators=(",", ":")).encode())
    head, tail = b"data: " + parts[0].encode(), parts[1].encode() + b"\n\n"
    return lambda content: head + content + tail


def _delta_json(delivery: Delivery) -> bytes:
    """The JSON of a chunk's ``delta``, as published when it can be cut out, else encoded again."""
    delta = events.chunk_delta_json(delivery.raw, delivery.seq)
    if delta is None:
        delta = json.dumps(delivery.event["delta"]).encode()
    return delta
