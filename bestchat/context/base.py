"""What a context strategy works on and returns, and the base class of strategies.

A prompt is a list of :class:`Item` (the system prompt, then the branch's messages oldest
first, each with its token count already known). A strategy is given a :class:`Situation`
(the items, the token budget, a tokenizer for new text, the conversation's summaries) and
returns a :class:`Fitted` (the items to send and a note of what it did), or None when it
changes nothing. Strategies are chained (:mod:`bestchat.context.chain`); whatever they return,
the chain's last step guarantees the budget.

Rules a strategy keeps (the chain checks them and ignores a strategy that breaks them):
pinned items (the system prompt, the newest user message and everything after it) are
returned unchanged; items sharing a ``group`` (an assistant's tool calls and their results)
are kept or dropped together; the order of kept items does not change (new items, such as a
summary, may be inserted).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Protocol

from bestchat.errors import Invalid


@dataclass(frozen=True)
class FilePiece:
    """An uploaded file's text attached to a message. ``text`` None: only a reference is sent
    (``note`` says why: attached again later, compressed...); ``tokens`` is what is sent."""

    upload_id: str
    name: str
    mime: str
    text: str | None
    tokens: int
    note: str = ""


@dataclass(frozen=True)
class ImagePiece:
    """An image attached to a message: an upload (``upload_id``) or an outside URL (``url``,
    from ``/v1``). ``tokens`` is its fixed cost (``CONTEXT_IMAGE_TOKENS``); sent as an image part
    to a vision-capable model, as a one-line note otherwise."""

    upload_id: str | None
    url: str | None
    name: str
    mime: str
    tokens: int


@dataclass(frozen=True)
class Item:
    """One message of the prompt, with its token count.

    ``text_tokens`` includes the per-message overhead. ``message_id`` is None for what is not
    a stored message (the system prompt, a summary). ``kind``: ``system``, ``message`` or
    ``summary``. ``group``: items with the same group go together. ``turn``: the index of the
    user message that starts the item's turn (truncation drops whole turns, oldest first).
    """

    role: str
    text: str
    text_tokens: int
    message_id: str | None
    group: int
    turn: int
    pinned: bool = False
    kind: str = "message"
    files: tuple[FilePiece, ...] = ()
    images: tuple[ImagePiece, ...] = ()
    tool_calls: tuple[dict[str, Any], ...] | None = None
    tool_call_id: str | None = None

    @property
    def tokens(self) -> int:
        return self.text_tokens + sum(f.tokens for f in self.files) + sum(i.tokens for i in self.images)

    def but(self, **changes: Any) -> "Item":
        """A copy with ``changes`` (items are immutable)."""
        return replace(self, **changes)


def total(items: list[Item]) -> int:
    """The tokens of ``items`` as a prompt (without the prompt's own overhead)."""
    return sum(item.tokens for item in items)


# What a summary item's text starts with when sent (counted in :attr:`Summary.tokens`).
SUMMARY_HEADING = "Summary of the earlier conversation:\n"


@dataclass(frozen=True)
class Summary:
    """A stored summary (a ``context_optimizations`` row): it stands for the branch's messages
    from its start up to and including ``last_message_id``."""

    id: str
    text: str
    tokens: int  # of ``SUMMARY_HEADING + text`` as a message (overhead included)
    last_message_id: str
    covered: int  # how many messages it stands for


class Summaries(Protocol):
    """The conversation's summaries, as a strategy sees them (the core implements it)."""

    def latest(self, items: list[Item]) -> Summary | None:
        """The newest stored summary whose last covered message is one of ``items``."""

    def make(self, items: list[Item], previous: Summary | None) -> Summary:
        """Summarize ``items`` (which follow ``previous``, when given, in the branch) with the
        conversation's model, store it and return it. Raises
        :class:`bestchat.context.base.SummaryUnavailable` when the model cannot."""


class SummaryUnavailable(Exception):
    """No summary could be made (no model, a provider error): the strategy does without."""


@dataclass
class Situation:
    """What a strategy is given."""

    items: list[Item]
    budget: int  # the most tokens ``total(items)`` may be
    count: Callable[[str], int]  # tokens of new text (a summary, a reference note), overhead excluded
    summaries: Summaries
    conversation_id: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # CONTEXT_* settings of the app

    @property
    def over(self) -> int:
        """How many tokens too many (0 or less: it fits)."""
        return total(self.items) - self.budget


@dataclass
class Fitted:
    """What a strategy returns: the items to send and a JSON-able note of what it did
    (recorded in ``context_optimizations.details``; ``summary_id`` when a summary is used)."""

    items: list[Item]
    note: dict[str, Any] = field(default_factory=dict)


class ContextStrategy:
    """Subclasses set ``name`` (and ``description``) and implement :meth:`fit`.

    ``plugin`` is stamped by the registry with the name of the plugin that registered it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    plugin: ClassVar[str | None] = None

    def fit(self, situation: Situation) -> Fitted | None:
        """The items to send, closer to (or within) ``situation.budget``; None when this
        strategy has nothing to do. Called only while the items are over the budget."""
        raise NotImplementedError


class ContextTooLong(Invalid):
    """Even what must be sent (the system prompt and the newest message, with its files) does
    not fit the model's window: the send is refused (400 ``context_length_exceeded``)."""

    def __init__(self, needed: int, budget: int):
        super().__init__("context_length_exceeded",
                         f"the message needs {needed:,} tokens but the model accepts at most {budget:,} "
                         "(its window less the room kept for the answer); shorten it or attach less",
                         details={"needed": needed, "budget": budget})
        self.needed, self.budget = needed, budget
