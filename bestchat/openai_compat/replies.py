"""OpenAI's response objects, built from BestChat's stream events, and their delivery.

An answer is followed with the same :class:`~bestchat.streaming.subscriber.Subscriber` as the
SSE endpoint (replay + live, each chunk exactly once). Streaming, each ``chunk`` event becomes
a ``chat.completion.chunk`` with ``delta.content``; ``message.completed`` becomes the chunk
with ``finish_reason`` (then the ``usage`` chunk when asked for, then ``data: [DONE]``), and
``message.failed`` an SSE ``data: {"error": ...}`` line before the stream closes. Not
streaming, the terminal event becomes one ``chat.completion`` or the failure's error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from flask import Response, jsonify

from bestchat.errors import ApiError
from bestchat.streaming import events
from bestchat.streaming.bus import Delivery
from bestchat.streaming.subscriber import Subscriber

# Seconds between SSE comment lines on an idle stream.
KEEPALIVE_SECONDS = 15

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "invalid_request_error", 409: "invalid_request_error", 429: "rate_limit_error"}

# A failed generation's error code -> (HTTP status, whether retrying the request may help).
# Any other code (internal_error, interrupted) is a 500 not worth retrying.
FAILURES: dict[str, tuple[int, bool]] = {
    "unknown_model": (400, False),
    "provider_key_missing": (400, False),
    "provider_bad_request": (400, False),
    "provider_auth": (502, False),
    "provider_error": (502, False),
    "provider_rate_limited": (429, True),
    "provider_unavailable": (502, True),
    "provider_timeout": (504, True),
    "too_long": (504, False),
    "unavailable": (503, True),
}


# ---- errors ---------------------------------------------------------------------------------

def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(error: ApiError) -> dict[str, Any]:
    """OpenAI's error object; ``code`` is BestChat's code, so it is our shape plus type/param."""
    return {"error": {**getattr(error, "details", {}), "message": error.message,
                      "type": error_type(error.status), "code": error.code,
                      "param": getattr(error, "param", None)}}


def error_response(error: ApiError) -> Response:
    response = jsonify(error_body(error))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def failure(code: str, message: str) -> ApiError:
    """The error answering a failed generation. ``x-should-retry`` tells the openai SDK whether
    its automatic retries are worth it (each retry is a new conversation)."""
    status, retryable = FAILURES.get(code, (500, False))
    return ApiError(status, code, message, {"x-should-retry": "true" if retryable else "false"})


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
        """The ``chat.completion`` for the answer's terminal event (or its failure, raised)."""
        if terminal["type"] == events.FAILED:
            raise failure(terminal["error"]["code"], terminal["error"]["message"])
        message = {"role": "assistant", "content": terminal["message"]["content"], "refusal": None}
        return {**self._base("chat.completion", [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason_of(terminal)}]),
            "usage": usage_of(terminal)}

    def _base(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": None, "choices": choices}


def finish_reason_of(terminal: dict[str, Any]) -> str:
    """The provider's reason; ``stop`` when unknown, and for an answer cancelled elsewhere."""
    return terminal.get("finish_reason") or "stop"


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
    ended = False
    try:
        yield _data(completion.chunk({"role": "assistant", "content": ""}, with_usage=include_usage))
        while not ended:
            delivery = subscriber.next(timeout=KEEPALIVE_SECONDS)
            if delivery is None:
                yield ": keep-alive\n\n"
                continue
            event = delivery.event
            if delivery.message_id != message_id:
                continue
            if event["type"] == events.CHUNK:
                yield _data(completion.chunk({"content": event["delta"]}, with_usage=include_usage))
            elif event["type"] == events.COMPLETED:
                ended = True
                yield _data(completion.chunk({}, finish_reason_of(event), with_usage=include_usage))
                if include_usage:
                    yield _data(completion.usage_chunk(event))
                yield "data: [DONE]\n\n"
            elif event["type"] == events.FAILED:
                ended = True
                yield _data(error_body(failure(event["error"]["code"], event["error"]["message"])))
    finally:
        subscriber.close()
        if not ended:
            on_abandon()


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"
