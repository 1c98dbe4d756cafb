"""What strategies share: dropping the oldest whole turns (:func:`keep_newest`, the chain's last
step too), and the text of what the prompt says in place of something left out, so that a
strategy counts exactly the line :mod:`bestchat.context.render` sends.

Turns are the unit of truncation: a turn is the user message that starts it and everything up
to the next user message (``Item.turn``); turns joined by a group (a tool call in one, its
result in another) are one unit, so a call is never separated from its result.
"""

from __future__ import annotations

from typing import Callable

from bestchat.context.base import ContextTooLong, Item
from bestchat.context.tokens import MESSAGE_OVERHEAD

# What precedes a summary's text in the prompt (a system message).
SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
# Between a message's text and each block or line render appends for its files and images.
SEPARATOR = "\n\n"


def note_line(kind: str, name: str, note: str) -> str:
    """The one line sent instead of a file's text or an image: ``[file NAME: NOTE]``."""
    return f"[{kind} {name}: {note}]"


def note_tokens(kind: str, name: str, note: str, count: Callable[[str], int]) -> int:
    """What :func:`note_line` costs appended to a message (the separator included)."""
    return count(SEPARATOR + note_line(kind, name, note))


def summary_tokens(tokens: int, count: Callable[[str], int]) -> int:
    """What a summary item costs: the stored summary's ``tokens`` (overhead included) and the
    prefix render adds."""
    return tokens + count(SUMMARY_PREFIX)


def message_tokens(text: str, count: Callable[[str], int]) -> int:
    """What a new message of ``text`` costs (the per-message overhead included)."""
    return count(text) + MESSAGE_OVERHEAD


def units(items: list[Item]) -> list[list[int]]:
    """The indexes of ``items`` in truncation units, oldest first: each a turn (or several
    turns a group joins), in the order the units start. Pinned items are in their units too."""
    unit_of: dict[int, list[int]] = {}  # turn -> its unit
    group_turn: dict[int, int] = {}  # group -> the turn it was first seen in
    for index, item in enumerate(items):
        turn = item.turn
        if group_turn.setdefault(item.group, turn) != turn:
            return _joined_units(items)  # a group spans turns (rare): join them
        unit = unit_of.get(turn)
        if unit is None:
            unit_of[turn] = [index]
        else:
            unit.append(index)
    return sorted(unit_of.values(), key=lambda unit: unit[0])


def _joined_units(items: list[Item]) -> list[list[int]]:
    """:func:`units` when groups join turns: union-find over the turns."""
    parent: dict[int, int] = {}

    def root(turn: int) -> int:
        while parent.get(turn, turn) != turn:
            turn = parent[turn]
        return turn

    group_turn: dict[int, int] = {}
    for item in items:
        parent.setdefault(item.turn, item.turn)
        a, b = root(group_turn.setdefault(item.group, item.turn)), root(item.turn)
        if a != b:
            parent[b] = a
    joined: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        joined.setdefault(root(item.turn), []).append(index)
    return sorted(joined.values(), key=lambda unit: unit[0])


def pinned_tokens(items: list[Item]) -> int:
    return sum(item.tokens for item in items if item.pinned)


def newest_fitting(items: list[Item], budget: int) -> list[int]:
    """The indexes kept by :func:`keep_newest` (pinned items and the newest whole units that
    fit ``budget``), ascending. May exceed ``budget`` only when the pinned items do."""
    return _newest_fitting(items, budget - pinned_tokens(items))


def _newest_fitting(items: list[Item], room: int) -> list[int]:
    kept: list[int] = []
    scanning = True
    for unit in reversed(units(items)):
        cost = sum(items[i].tokens for i in unit if not items[i].pinned)
        if scanning and cost <= room:
            room -= cost
            kept.extend(unit)
        else:
            scanning = False
            kept.extend(i for i in unit if items[i].pinned)
    return sorted(kept)


def keep_newest(items: list[Item], budget: int) -> list[Item]:
    """The pinned items and the newest whole turns that fit ``budget`` (newest first; the first
    turn that does not fit ends the scan), in their order. Never splits a group. Raises
    :class:`ContextTooLong` when the pinned items alone exceed ``budget``."""
    pinned = unpinned = 0
    for item in items:
        if item.pinned:
            pinned += item.tokens
        else:
            unpinned += item.tokens
    if pinned > budget:
        raise ContextTooLong(pinned, budget)
    if pinned + unpinned <= budget:
        return list(items)
    return [items[i] for i in _newest_fitting(items, budget - pinned)]
