"""The one vocabulary of an assistant message's status, and the sets of statuses that matter.

``pending`` (admitted, its job not started) -> ``queued`` (admitted while every generation
slot was busy: it waits for one) -> ``streaming`` (its job claimed it) -> one final status:
``complete``, ``cancelled``, ``failed`` or ``interrupted`` (its job died; the reaper ended it).
A generation that asks a person to approve a tool call parks its answer ``waiting`` (no job
runs, no slot is held); a decision or its timeout puts it back to ``queued`` for a job to go on.
User messages are stored ``complete``.

Statuses are stored as their text (``messages.status``); a :class:`MessageStatus` compares
equal to that text, so rows read back as plain strings compare as expected. SQL that names
statuses takes them from :func:`sql_list`, never from literals of its own.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Iterable


class MessageStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    STREAMING = "streaming"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    WAITING = "waiting"


# Waiting for its job: what a generation job may claim.
CLAIMABLE: frozenset[MessageStatus] = frozenset({MessageStatus.PENDING, MessageStatus.QUEUED})
# Not finished yet: an answer in flight (a new answer after it must wait; a cancel applies).
ACTIVE: frozenset[MessageStatus] = CLAIMABLE | {MessageStatus.STREAMING, MessageStatus.WAITING}
# Finished for good: the message's stream ends with its terminal event.
FINAL: frozenset[MessageStatus] = frozenset(MessageStatus) - ACTIVE


def sql_list(statuses: Iterable[MessageStatus]) -> str:
    """``statuses`` as an SQL list of literals, in a fixed order: ``'pending', 'queued'``."""
    return ", ".join(f"'{status.value}'" for status in sorted(statuses, key=list(MessageStatus).index))
