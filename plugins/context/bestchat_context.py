"""BestChat's built-in context strategies, a plugin like any other: ``truncate``, ``compress`` and
``summarize`` (hook ``register_context_strategies``).

Each is given the prompt's items while they are over the budget and returns what to send
instead (:class:`bestchat.context.base.Fitted`) or None. Pinned items (the system prompt, the
newest user message and what follows it) are never touched, and a tool call is never separated
from its result; the chain that runs them checks both, and ends with truncation, so the budget
holds whatever each one does.
"""

from __future__ import annotations

from typing import Callable

from bestchat.plugin_api import (
    ContextStrategy, FilePiece, Fitted, Item, Situation, Summary, SummaryUnavailable, hookimpl, keep_newest,
    message_tokens, newest_fitting, note_tokens, summary_tokens, total, units,
)

# The settings' defaults (config/defaults.py), for a Situation without settings.
SUMMARY_MAX_TOKENS = 1024
# The share of the room left beside a new summary that the turns it keeps may fill.
KEEP_SHARE = 0.5
COMPRESS_KEEP_TURNS = 2
COMPRESS_MIN_TOKENS = 200


class Truncate(ContextStrategy):
    """Drop the oldest whole turns until the rest fits."""

    name = "truncate"
    description = ("Keep the system prompt and the newest turns that fit; older turns are left out "
                   "(a tool call always with its result, the newest message always)")

    def fit(self, situation: Situation) -> Fitted | None:
        kept = keep_newest(situation.items, situation.budget)
        if len(kept) == len(situation.items):
            return None
        return Fitted(kept, {"dropped": len(situation.items) - len(kept)})


class Compress(ContextStrategy):
    """Shorten long tool outputs and file texts of older turns to one-line references."""

    name = "compress"
    description = ("Old tool outputs and file texts are sent as a short reference instead of in full "
                   "(the full text stays on the server)")

    def fit(self, situation: Situation) -> Fitted | None:
        settings = situation.settings
        keep_turns = int(settings.get("CONTEXT_COMPRESS_KEEP_TURNS", COMPRESS_KEEP_TURNS))
        min_tokens = int(settings.get("CONTEXT_COMPRESS_MIN_TOKENS", COMPRESS_MIN_TOKENS))
        items, count = situation.items, situation.count
        turns = list(dict.fromkeys(item.turn for item in items if item.kind == "message"))
        recent = set(turns[len(turns) - keep_turns:]) if keep_turns > 0 else set()
        tool_names = {call.get("id"): (call.get("function") or {}).get("name")
                      for item in items for call in item.tool_calls or ()}
        compressed = saved = 0
        out: list[Item] = []
        for item in items:
            if item.pinned or item.kind != "message" or item.turn in recent:
                out.append(item)
                continue
            changes: dict = {}
            if item.role == "tool" and item.text_tokens > min_tokens:
                label = tool_names.get(item.tool_call_id) or item.tool_call_id or "a tool"
                reference = f"[output of {label} omitted: {item.text_tokens} tokens; kept by the server]"
                tokens = message_tokens(reference, count)
                if tokens < item.text_tokens:
                    changes.update(text=reference, text_tokens=tokens)
            files = tuple(_shortened(piece, min_tokens, count) for piece in item.files) if item.files else ()
            if files != item.files:
                changes["files"] = files
            if changes:
                shorter = item.but(**changes)
                compressed += sum(a != b for a, b in zip(item.files, files)) + ("text" in changes)
                saved += item.tokens - shorter.tokens
                item = shorter
            out.append(item)
        if not compressed:
            return None
        return Fitted(out, {"compressed": compressed, "saved": saved})


def _shortened(piece: FilePiece, min_tokens: int, count: Callable[[str], int]) -> FilePiece:
    if piece.text is None or piece.tokens <= min_tokens:
        return piece
    note = f"omitted here ({piece.tokens} tokens), attached earlier"
    tokens = note_tokens("file", piece.name, note, count)
    if tokens >= piece.tokens:
        return piece
    return FilePiece(upload_id=piece.upload_id, name=piece.name, mime=piece.mime, text=None, tokens=tokens, note=note)


class Summarize(ContextStrategy):
    """Stand for the older turns with a summary the model writes (stored, reused until more turns
    fall out of the window)."""

    name = "summarize"
    description = ("Older turns are replaced by a summary written by the conversation's model, "
                   "kept and reused until more turns fall out of the window")

    def fit(self, situation: Situation) -> Fitted | None:
        items, budget, count = situation.items, situation.budget, situation.count
        # (at most a quarter of the budget, as the server asks of the model: a small window keeps
        # room for turns beside its summary)
        max_tokens = min(int(situation.settings.get("CONTEXT_SUMMARY_MAX_TOKENS", SUMMARY_MAX_TOKENS)), budget // 4)
        start = 1 if items and items[0].kind == "system" else 0
        head = items[:start]
        first_pinned = next((i for i in range(start, len(items)) if items[i].pinned), len(items))
        try:
            latest = situation.summaries.latest(items)
            position = _position(items, latest, start, first_pinned)
            reuse = None
            if latest is not None and position is not None:
                after = [item for item in items[position + 1:] if item.kind != "summary"]
                reuse = Fitted([*head, self._item(latest, items, count), *after],
                               {"summary_id": str(latest.id), "reused": True, "covered": latest.covered})
                if total(reuse.items) <= budget:
                    return reuse
            reserve = summary_tokens(message_tokens("", count) + max_tokens, count)
            # A new summary leaves room: the turns it keeps fill at most KEEP_SHARE of what is
            # left, so the next turns fit with it and it is reused instead of made again each turn.
            share = float(situation.settings.get("CONTEXT_SUMMARY_KEEP_SHARE", KEEP_SHARE))
            kept = [i for i in newest_fitting(items, int((budget - reserve) * share)) if i >= start]
            end = kept[0] if kept else len(items)
            cover = [item for item in items[start:end] if item.kind == "message"]
            previous = latest if position is not None and position < end else None
            if previous is not None:
                cover = [item for item in items[position + 1:end] if item.kind == "message"]
            if not cover:  # nothing newer to add: the stored summary, and truncation after it
                return reuse
            summary, calls = previous, 0
            # Each chunk fits with the summary folded so far (read when the chunk is cut).
            for chunk in _chunks(cover, budget - reserve, lambda: summary.tokens if summary else 0):
                summary = situation.summaries.make(chunk, summary)
                calls += 1
        except SummaryUnavailable:
            return None
        return Fitted([*head, self._item(summary, items, count), *(items[i] for i in kept)],
                      {"summary_id": str(summary.id), "reused": False, "covered": summary.covered, "made": calls})

    @staticmethod
    def _item(summary: Summary, items: list[Item], count: Callable[[str], int]) -> Item:
        return Item(role="system", text=summary.text, text_tokens=summary_tokens(summary.tokens, count),
                    message_id=None, group=max((item.group for item in items), default=0) + 1, turn=-1,
                    pinned=False, kind="summary")


def _position(items: list[Item], summary: Summary | None, start: int, first_pinned: int) -> int | None:
    """Where ``summary``'s last covered message is in ``items``, when the summary can stand for
    what precedes it: a message before the pinned ones, ending a group."""
    if summary is None:
        return None
    position = next((i for i in range(start, first_pinned) if items[i].message_id == str(summary.last_message_id)), None)
    if position is None:
        return None
    later = {item.group for item in items[position + 1:]}
    if any(item.group in later for item in items[:position + 1]):
        return None
    return position


def _chunks(cover: list[Item], limit: int, previous_tokens: Callable[[], int]):
    """``cover`` in pieces of whole turns, each fitting ``limit`` with the summary made so far
    (at least one turn each)."""
    chunk: list[Item] = []
    for unit in units(cover):
        members = [cover[i] for i in unit]
        if chunk and total(chunk) + total(members) + previous_tokens() > limit:
            yield chunk
            chunk = []
        chunk.extend(members)
    if chunk:
        yield chunk


@hookimpl
def register_context_strategies(register):
    register(Truncate)
    register(Compress)
    register(Summarize)
