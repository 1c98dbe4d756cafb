"""Helpers for providers that speak HTTP and OpenAI-style streams: status code to
:class:`ProviderError`, Retry-After, key redaction (the one :func:`redact`), and assembling
streamed tool calls.

Shared by the first-party ``openai`` and ``litellm`` plugins and available to third-party
ones, so every provider maps upstream failures the same way (and failover treats them alike).
"""

from __future__ import annotations

import base64
import json
import re
from email.utils import parsedate_to_datetime
from time import time
from typing import Mapping
from urllib.parse import quote, quote_plus

from bestchat.providers.base import (
    ProviderAuthError, ProviderBadRequest, ProviderError, ProviderRateLimited, ProviderTimeout,
    ProviderUnavailable, ToolCall,
)

MAX_MESSAGE = 500


def error_for_status(who: str, status: int, detail: str, headers: Mapping[str, str] | None = None) -> ProviderError:
    """The error for an HTTP ``status`` from ``who`` (a host or model name).

    The message is short (who, the status and what it means); the upstream's ``detail`` goes
    to :attr:`ProviderError.detail`, for the connection's admin only. ``detail`` must already
    be free of the key. Auth failures carry no detail: the upstream text may quote the key.
    """
    if status in (401, 403):
        return ProviderAuthError(f"{who}: the API key was rejected (HTTP {status})", status=status)
    if status == 429:
        error = ProviderRateLimited(f"{who}: rate limited (HTTP 429)", status=status,
                                    retry_after=retry_after(headers or {}))
    elif status == 408:
        error = ProviderTimeout(f"{who}: timed out (HTTP 408)", status=status)
    elif status >= 500:
        error = ProviderUnavailable(f"{who}: the provider failed (HTTP {status})", status=status)
    else:
        error = ProviderBadRequest(f"{who}: the provider refused the request (HTTP {status})", status=status)
    return with_detail(error, detail)


def with_detail(error: ProviderError, detail: str | None) -> ProviderError:
    """``error`` with the upstream's (key-free) ``detail`` attached, shortened."""
    error.detail = detail[:MAX_MESSAGE] if detail else None
    return error


def message_for(error: ProviderError, *, owner_admin: bool) -> str:
    """What a viewer sees of ``error``: the message, and the upstream's detail only for the
    admin who owns the connection."""
    if owner_admin and error.detail:
        return f"{error.message}: {error.detail}"[:MAX_MESSAGE]
    return error.message


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
    """``text`` with ``key`` replaced by :data:`REDACTED` wherever it is echoed: as is,
    URL-encoded (once or twice), base64-encoded, in any letter case, and in part (any run of
    :data:`MIN_ECHO` or more of its characters, such as a ``...`` shortened key's head and tail).

    The single redaction of keys for every provider and for the registry's last check."""
    if not key:
        return text
    for form in _encodings(key):
        text = re.sub(re.escape(form), REDACTED, text, flags=re.IGNORECASE)
    if len(key) < MIN_ECHO:
        return text
    return _redact_fragments(text, key.lower())


REDACTED = "[redacted]"
# The shortest run of a key's characters that counts as an echo of it. Shorter runs say
# little about the key (``key_last4`` shows four on purpose) and match ordinary words.
MIN_ECHO = 8


def _encodings(key: str) -> list[str]:
    """The spellings of ``key`` an upstream error may echo, longest first."""
    once = quote(key, safe="")
    forms = {key, once, quote(once, safe=""), quote_plus(key),
             base64.b64encode(key.encode()).decode().rstrip("=")}
    return sorted(forms, key=len, reverse=True)


def _redact_fragments(text: str, key: str) -> str:
    """Replace every run of ``MIN_ECHO``+ characters of ``text`` that occurs in ``key``
    (compared without letter case); runs are taken longest-first from each position."""
    lower = text.lower()
    out: list[str] = []
    i = 0
    while i < len(text):
        end = i + MIN_ECHO
        if end <= len(text) and lower[i:end] in key:
            while end < len(text) and lower[i:end + 1] in key:
                end += 1
            out.append(REDACTED)
            i = end
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


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
