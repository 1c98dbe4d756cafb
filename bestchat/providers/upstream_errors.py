"""An upstream's HTTP failure as a :class:`ProviderError`: the status mapped to its kind, the
upstream's ``Retry-After``, and what a viewer may see of the upstream's own text.

Shared by the first-party ``openai`` and ``litellm`` plugins and available to third-party
ones, so every provider maps upstream failures the same way (and failover treats them alike).
Keys are taken out of upstream text before it gets here (:func:`bestchat.redaction.redact_key`).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from time import time
from typing import Mapping

from bestchat.providers.base import (
    ProviderAuthError, ProviderBadRequest, ProviderError, ProviderRateLimited, ProviderTimeout,
    ProviderUnavailable,
)

# The longest upstream detail kept, and the longest message a viewer is shown.
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
