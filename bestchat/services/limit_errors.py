"""The refusals of the usage limits: which limit, its value, what is used, and when it resets.

Every refusal is a domain error with code ``limit_<kind>``: :class:`~bestchat.errors.RateLimited`
(429) for requests per minute, answers at once and tokens per day,
:class:`~bestchat.errors.PaymentRequired` (402) for cost per month. ``details`` are
``{limit, used, resets_at, limit_source}`` and ``retry_after`` the seconds until the window
resets (a few seconds when only an answer in flight stands in the way).
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from bestchat.errors import DomainError, PaymentRequired, RateLimited
from bestchat.services import limits

# Seconds to wait when an answer in flight, not a window, stands in the way.
RETRY_AFTER = 5

_WINDOW = {"requests_per_minute": "this minute", "tokens_per_day": "today", "cost_per_month": "this month"}


def _amount(kind: str, value: Any) -> str:
    if kind == "cost_per_month":
        return f"${Decimal(value):,.2f}"
    noun = {"requests_per_minute": "requests", "tokens_per_day": "tokens"}.get(kind, "answers")
    return f"{int(value):,} {noun}"


def _in(seconds: float) -> str:
    """``3 h 12 min``, ``45 s``: how long until a reset."""
    seconds = max(int(math.ceil(seconds)), 1)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def _when(kind: str, reset: datetime, now: datetime) -> str:
    at = f"{reset:%H:%M} UTC" if kind != "cost_per_month" else f"{reset:%Y-%m-%d} 00:00 UTC"
    return f"the limit resets at {at} (in {_in((reset - now).total_seconds())})"


def _error(kind: str, message: str, limit: limits.Limit, used: Any, reset: datetime | None,
           retry_after: int) -> DomainError:
    value = float(limit.value) if kind == "cost_per_month" else int(limit.value)
    details = {"limit": value, "used": float(used) if kind == "cost_per_month" else int(used),
               "resets_at": reset.isoformat().replace("+00:00", "Z") if reset else None,
               "limit_source": limit.source}
    error_class = PaymentRequired if kind == "cost_per_month" else RateLimited
    return error_class("limit_" + kind, message, details=details, retry_after=retry_after)


def limit_exceeded(kind: str, limit: limits.Limit, used: Any, now: datetime) -> DomainError:
    """``used`` has reached ``limit`` of ``kind`` in the window holding ``now``."""
    reset = limits.resets_at(kind, now)
    if reset is None:
        message = (f"you already have {int(used):,} answers being generated, your limit at once; "
                   "wait for one to finish (or cancel one) and try again")
        return _error(kind, message, limit, used, None, RETRY_AFTER)
    message = f"you have used your {_amount(kind, limit.value)} for {_WINDOW[kind]}; {_when(kind, reset, now)}"
    return _error(kind, message, limit, used, reset, max(int(math.ceil((reset - now).total_seconds())), 1))


def one_answer_at_a_time(kind: str, limit: limits.Limit, used: Any, now: datetime) -> DomainError:
    """A second answer at once from a user under a tokens or cost limit."""
    reset = limits.resets_at(kind, now)
    message = (f"an answer is still being generated; under your limit of {_amount(kind, limit.value)} "
               f"for {_WINDOW[kind]} ({_amount(kind, used)} used) one answer runs at a time: wait for it "
               "to finish and try again")
    return _error(kind, message, limit, used, reset, RETRY_AFTER)
