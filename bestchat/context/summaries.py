"""The conversation summaries the summarize strategy uses: stored in ``context_optimizations``
(strategy ``summarize``, the summary text, the first and last message it stands for, tokens
before and after), found again for later answers of the same branch, and made with the
conversation's own model.

:class:`StoredSummaries` implements :class:`bestchat.context.base.Summaries` for one
generation job (on a worker: a summary is made inside the ``bestchat.generate`` task, before
the answer's first token, only when the branch no longer fits and no stored summary still
covers enough of it).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

from sqlalchemy import select

from bestchat.context import tokens
from bestchat.context.base import Item, Summary, SummaryUnavailable
from bestchat.extensions import db
from bestchat.models import ContextOptimization
from bestchat.providers.base import ProviderError

log = logging.getLogger(__name__)

STRATEGY = "summarize"
INSTRUCTIONS = (
    "You write the running summary of a conversation between a user and an assistant, so the "
    "assistant can go on without the full transcript. Keep every fact, decision, name, number, "
    "file and open question; drop pleasantries. Write plain prose or short bullet points, at most "
    "{limit} tokens. Reply with the summary only."
)

# Makes a summary: (prompt messages, most tokens) -> its text (raises ProviderError).
Summarizer = Callable[[list[dict[str, Any]], int], str]


class StoredSummaries:
    """The summaries of one conversation, for one answer's prompt."""

    def __init__(self, conversation_id: uuid.UUID, answer_id: uuid.UUID, summarizer: Summarizer,
                 encoding: str, max_tokens: int, budget: int):
        self.conversation_id = conversation_id
        self.answer_id = answer_id
        self.summarizer = summarizer
        self.encoding = encoding
        self.max_tokens = min(max_tokens, budget // 4)  # (as the summarize strategy reserves)
        self.budget = budget
        self.made: list[str] = []  # ids of the summaries made for this answer

    def latest(self, items: list[Item]) -> Summary | None:
        ids = [uuid.UUID(item.message_id) for item in items if item.message_id]
        if not ids:
            return None
        row = db.session.scalars(
            select(ContextOptimization)
            .where(ContextOptimization.conversation_id == self.conversation_id,
                   ContextOptimization.strategy == STRATEGY, ContextOptimization.summary.is_not(None),
                   ContextOptimization.last_message_id.in_(ids))
            .order_by(ContextOptimization.created_at.desc()).limit(1)).first()
        db.session.commit()  # ends the read: no connection held while the answer streams
        return None if row is None else _summary(row)

    def make(self, items: list[Item], previous: Summary | None) -> Summary:
        covered = [item for item in items if item.message_id]
        if not covered:
            raise SummaryUnavailable("nothing to summarize")
        instructions = INSTRUCTIONS.format(limit=self.max_tokens)
        # The most transcript one request may carry (the instructions and the summary to write
        # also fit the window): a single turn bigger than that is cut.
        limit = max(self.budget - self.max_tokens - tokens.count_text(instructions, self.encoding) - 16, 256)
        prompt = [{"role": "system", "content": instructions},
                  {"role": "user", "content": _cut(_transcript(items, previous), limit, self.encoding)}]
        try:
            text = self.summarizer(prompt, self.max_tokens).strip()
        except ProviderError as error:
            raise SummaryUnavailable(error.message) from error
        if not text:
            raise SummaryUnavailable("the model returned an empty summary")
        text = _cut(text, self.max_tokens, self.encoding)
        first = _first_message_id(previous) or covered[0].message_id
        row = ContextOptimization(
            conversation_id=self.conversation_id, strategy=STRATEGY,
            input_tokens=sum(item.tokens for item in items) + (previous.tokens if previous else 0),
            output_tokens=tokens.message_tokens(text, self.encoding), summary=text,
            first_message_id=uuid.UUID(first), last_message_id=uuid.UUID(covered[-1].message_id),
            details={"covered": (previous.covered if previous else 0) + len(covered),
                     "previous_id": previous.id if previous else None,
                     "message_id": str(self.answer_id)})
        db.session.add(row)
        db.session.commit()
        self.made.append(str(row.id))
        log.info("conversation %s: summarized %d messages into %d tokens", self.conversation_id,
                 row.details["covered"], row.output_tokens)
        return _summary(row)


def _summary(row: ContextOptimization) -> Summary:
    return Summary(id=str(row.id), text=row.summary or "", tokens=row.output_tokens,
                   last_message_id=str(row.last_message_id), covered=int((row.details or {}).get("covered") or 0))


def _first_message_id(previous: Summary | None) -> str | None:
    if previous is None:
        return None
    row = db.session.get(ContextOptimization, uuid.UUID(previous.id))
    return str(row.first_message_id) if row is not None and row.first_message_id else None


def _transcript(items: list[Item], previous: Summary | None) -> str:
    """What the model summarizes: the summary so far, then the messages, as plain text."""
    lines = []
    if previous is not None:
        lines.append(f"Summary so far:\n{previous.text}\n\nThe conversation went on:")
    for item in items:
        text = item.text
        for piece in item.files:
            text += f"\n[file {piece.name}]" + (f"\n{piece.text}" if piece.text else "")
        for image in item.images:
            text += f"\n[image {image.name}]"
        if item.tool_calls:
            text += "\n" + "; ".join(f"[called {(call.get('function') or {}).get('name')}]"
                                     for call in item.tool_calls)
        lines.append(f"{item.role}: {text}")
    return "\n\n".join(lines)


def _cut(text: str, most: int, encoding: str) -> str:
    """``text`` cut to ``most`` tokens (a model may write more than it was asked)."""
    if tokens.count_text(text, encoding) <= most:
        return text
    coder = tokens.encoding(encoding) if encoding != tokens.ESTIMATE else None
    if coder is None:
        return text[: most * 4]
    return coder.decode(coder.encode_ordinary(text)[:most])
