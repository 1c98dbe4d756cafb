"""Helpers for providers that speak HTTP and OpenAI-style streams: status code to
:class:`ProviderError`, Retry-After, key redaction, and assembling streamed tool calls.

Shared by the first-party ``openai`` and ``litellm`` plugins and available to third-party
ones, so every provider maps upstream failures the same way (and failover treats them alike).
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from time import time
from typing import Mapping

from bestchat.providers.base import (
    ProviderAuthError, ProviderBadRequest, ProviderError, ProviderRateLimited, ProviderTimeout,
    ProviderUnavailable, ToolCall,
)

MAX_MESSAGE = 500


def error_for_status(who: str, status: int, detail: str, headers: Mapping[str, str] | None = None) -> ProviderError:
    """The error for an HTTP ``status`` from ``who`` (a host or model name).

    ``detail`` must already be free of the key. Auth failures get a fixed message, since the
    upstream text may quote (part of) the key.
    """
    if status in (401, 403):
        return ProviderAuthError(f"{who}: the API key was rejected (HTTP {status})", status=status)
    message = f"{who}: HTTP {status}: {detail}"[:MAX_MESSAGE]
    if status == 429:
        return ProviderRateLimited(message, status=status, retry_after=retry_after(headers or {}))
    if status == 408:
        return ProviderTimeout(message, status=status)
    if status >= 500:
        return ProviderUnavailable(message, status=status)
    return ProviderBadRequest(message, status=status)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def redact(text: str, key: str | None) -> str:
    """``text`` with every occurrence of ``key`` replaced by ``***``."""
    return text.replace(key, "***") if key else text


class ToolCallAssembler:
    """Accumulates OpenAI-style tool-call fragments (streamed by ``index``) into ToolCalls."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, index: int | None, call_id: str | None, name: str | None, arguments: str | None) -> None:
        call = self._calls.setdefault(index or 0, {})
        if call_id:
            call["id"] = call_id
        if name:
            call["name"] = call.get("name", "") + name
        call["arguments"] = call.get("arguments", "") + (arguments or "")

    def calls(self, who: str) -> list[ToolCall]:
        """The complete calls in index order; arguments that are not a JSON object are an error."""
        return [self._finish(self._calls[index], who) for index in sorted(self._calls)]

    @staticmethod
    def _finish(call: dict[str, str], who: str) -> ToolCall:
        name = call.get("name", "")
        try:
            arguments = json.loads(call.get("arguments") or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise ProviderError(f"{who}: the model called tool {name!r} with arguments that are not a JSON object")
        return ToolCall(id=call.get("id", ""), name=name, arguments=arguments)
