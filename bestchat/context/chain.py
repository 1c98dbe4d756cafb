"""Runs a conversation's context strategies in order until the prompt fits, checks what each
returns, and ends with the guard that makes the budget a guarantee.

Each strategy runs only while the items are over the budget. Its result is used only if it
keeps the rules of :mod:`bestchat.context.base`: every pinned item returned unchanged and in
order, no group split, the order kept, no item grown, nothing new but summary items (and none
after the newest user message). A strategy that raises or breaks a rule is logged and skipped.
After the chain, :func:`bestchat.context.fitting.keep_newest` drops the oldest whole turns that
still do not fit (recorded as ``guard``). When the pinned items alone exceed the budget, nothing
can help: :class:`bestchat.context.base.ContextTooLong`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from bestchat.context.base import ContextStrategy, ContextTooLong, Fitted, Item, Situation, Summaries, total
from bestchat.context.fitting import keep_newest, pinned_tokens

log = logging.getLogger(__name__)

GUARD = "guard"


@dataclass(frozen=True)
class Ran:
    """A step that changed the prompt: the strategy's name, its note, tokens before and after."""

    name: str
    note: dict[str, Any]
    before: int
    after: int


@dataclass
class Assembled:
    """The items to send and how they were arrived at."""

    items: list[Item]
    ran: list[Ran] = field(default_factory=list)
    tokens: int = 0  # total(items)
    budget: int = 0
    dropped: list[str] = field(default_factory=list)  # ids of input messages not sent, oldest first
    summary_id: str | None = None  # the summary the prompt uses, if any

    @property
    def strategies(self) -> list[str]:
        """The names of the steps that changed the prompt, in order."""
        return [step.name for step in self.ran]


def run_chain(items: list[Item], *, budget: int, chain: Iterable[str],
              strategies: dict[str, type[ContextStrategy]], count: Callable[[str], int], summaries: Summaries,
              conversation_id: str = "", settings: dict[str, Any] | None = None) -> Assembled:
    """Fit ``items`` into ``budget`` with the strategies named in ``chain`` (looked up in
    ``strategies``; unknown names are skipped with a warning), then the guard.

    Raises :class:`ContextTooLong` when the pinned items alone exceed ``budget``.
    """
    needed = pinned_tokens(items)
    if needed > budget:
        raise ContextTooLong(needed, budget)
    current = list(items)
    tokens = total(current)
    ran: list[Ran] = []
    for name in chain:
        if tokens <= budget:
            break
        strategy = strategies.get(name)
        if strategy is None:
            log.warning("context strategy %r is not registered; skipped", name)
            continue
        situation = Situation(items=list(current), budget=budget, count=count, summaries=summaries,
                              conversation_id=conversation_id, settings=dict(settings or {}))
        try:
            result = strategy().fit(situation)
        except Exception:  # noqa: BLE001 - a strategy's failure must not stop the send
            log.exception("context strategy %r raised; skipped", name)
            from bestchat.plugins import count_failure  # noqa: PLC0415 - plugins imports this package

            count_failure(getattr(strategy, "plugin", None))
            continue
        if result is None:
            continue
        problem = broken_rule(current, result)
        if problem:
            log.error("context strategy %r broke a rule (%s); its result is ignored", name, problem)
            continue
        if len(result.items) == len(current) and all(a is b or a == b for a, b in zip(result.items, current)):
            continue  # nothing changed
        current, before, tokens = list(result.items), tokens, total(result.items)
        ran.append(Ran(name, dict(result.note or {}), before, tokens))
    if tokens > budget:
        kept = keep_newest(current, budget)
        if len(kept) < len(current):
            before, tokens = tokens, total(kept)
            ran.append(Ran(GUARD, {"dropped": len(current) - len(kept)}, before, tokens))
        current = kept
    sent = {item.message_id for item in current if item.message_id is not None}
    summary_id = None
    for step in ran:
        summary_id = step.note.get("summary_id", summary_id)
    return Assembled(items=current, ran=ran, tokens=tokens, budget=budget,
                     dropped=[item.message_id for item in items if item.message_id is not None and item.message_id not in sent],
                     summary_id=str(summary_id) if summary_id is not None else None)


def broken_rule(before: list[Item], result: Any) -> str | None:
    """Why ``result`` (a strategy's return value for ``before``) may not be used, or None."""
    if not isinstance(result, Fitted) or not isinstance(result.items, list):
        return f"returned {type(result).__name__}, not Fitted"
    if not isinstance(result.note, dict):
        return "its note is not a dict"
    index = {(item.message_id if item.message_id is not None else _key(item)): i for i, item in enumerate(before)}
    groups = Counter(item.group for item in before)  # group -> how many items it has
    first_pinned = next((i for i, item in enumerate(before) if item.pinned and item.kind != "system"), len(before))
    kept: list[int] = []
    for item in result.items:
        if not isinstance(item, Item):
            return f"returned {type(item).__name__}, not Item"
        i = index.get(item.message_id if item.message_id is not None else _key(item))
        if i is None:
            if item.kind != "summary" or item.message_id is not None or item.pinned:
                return "added an item that is not a summary"
            if item.group in groups:
                return "added a summary in an existing group"
            if kept and kept[-1] >= first_pinned:
                return "added a summary after the newest user message"
            continue
        if kept and i <= kept[-1]:
            return "changed the order of the items"
        original = before[i]
        kept.append(i)
        if item is original:
            continue
        if item.pinned != original.pinned or (original.pinned and item != original):
            return "changed a pinned item"
        if (item.role, item.group, item.turn, item.kind, item.tool_calls, item.tool_call_id) != (
                original.role, original.group, original.turn, original.kind, original.tool_calls, original.tool_call_id):
            return "changed an item's role, group, turn, kind or tool calls"
        if item.tokens > original.tokens:
            return "made an item longer"
    present = set(kept)
    if any(item.pinned and i not in present for i, item in enumerate(before)):
        return "dropped a pinned item"
    sent = Counter(before[i].group for i in kept)
    if any(groups[group] != n for group, n in sent.items()):
        return "split a group"
    return None


def _key(item: Item) -> tuple[Any, ...]:
    """What identifies an item that is not a message (a message: its id) across a strategy's
    change."""
    return (item.kind, item.role, item.text)
