"""Usage just recorded: who used how many tokens and how much known cost.

The generation job calls :func:`usage_recorded` after its usage rows are committed; whatever
keeps running totals (the limit counters) registers with :func:`on_usage` at app start. A
callback that fails is logged and never fails the job.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Callable

log = logging.getLogger(__name__)

UsageCallback = Callable[[uuid.UUID, int, Decimal], None]

_callbacks: list[UsageCallback] = []


def on_usage(callback: UsageCallback) -> None:
    """Call ``callback(user_id, tokens, cost)`` after each recorded usage (registered once)."""
    if callback not in _callbacks:
        _callbacks.append(callback)


def usage_recorded(user_id: uuid.UUID, tokens: int, cost: Decimal) -> None:
    """``tokens`` (prompt + completion) and ``cost`` (known cost in USD) were committed for
    ``user_id``."""
    for callback in list(_callbacks):
        try:
            callback(user_id, tokens, cost)
        except Exception:  # noqa: BLE001 - totals catch up from the database; the answer stands
            log.warning("a usage callback failed", exc_info=True)
