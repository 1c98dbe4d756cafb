"""An answer's prompt, fitted into its model's window: what a generation job sends.

:class:`Prompt` is built once per job from its claim (the branch with stored token counts,
the conversation's strategies) and the first target's budget
(:func:`bestchat.context.window.budget_for`). :meth:`Prompt.messages` turns the branch into
items (:func:`bestchat.context.items.build_items`), runs the conversation's strategy chain
(:func:`bestchat.context.chain.run_chain`: never over the budget) and renders OpenAI messages
(:func:`bestchat.context.render.render`: files as text blocks, images as image parts for
models that take them). Each strategy that changed the prompt is recorded in
``context_optimizations``, and :attr:`Prompt.meta` (kept in the answer's ``meta["context"]``)
says which ran and how many tokens were sent.

A tool round adds its messages to the prompt (:meth:`Prompt.extend`); when they no longer fit,
the chain runs again with them pinned.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

from flask import Flask
from sqlalchemy import select

from bestchat import plugins
from bestchat.context import tokens
from bestchat.context.base import Item, total
from bestchat.context.chain import Assembled, run_chain
from bestchat.context.items import UploadFacts, build_items
from bestchat.context.render import render
from bestchat.context.summaries import StoredSummaries, Summarizer
from bestchat.context.window import Budget, budget_for
from bestchat.extensions import db
from bestchat.models import ContextOptimization, FileUpload
from bestchat.providers.registry import Target
from bestchat.store.claimed import Claimed

log = logging.getLogger(__name__)

SETTINGS_KEY = "bestchat_context_settings"


class Prompt:
    """One answer's prompt and what fitting it did."""

    def __init__(self, app: Flask, start: Claimed, target: Target, settings: dict[str, Any],
                 tool_schemas: list[dict[str, Any]] | None, summarizer: Summarizer):
        config = app.config
        self.start = start
        self.budget: Budget = budget_for(target.provider, target.model, settings, tool_schemas)
        self.chain: list[str] = list(start.context_strategy or config["CONTEXT_STRATEGIES"])
        self.settings = _context_settings(app)
        self.summaries = StoredSummaries(start.conversation_id, start.message_id, summarizer,
                                         self.budget.encoding, int(config["CONTEXT_SUMMARY_MAX_TOKENS"]),
                                         self.budget.tokens)
        uploads, self.stored = _uploads(start)
        self.items = build_items(start.branch, uploads, system_prompt=start.system_prompt,
                                 encoding=self.budget.encoding, count=self.count,
                                 image_tokens=int(config["CONTEXT_IMAGE_TOKENS"]))
        self.extra: list[Item] = []  # this answer's tool rounds, pinned
        self.sent = 0  # tokens of the prompt as last sent
        self.meta: dict[str, Any] = {}
        self._recorded: set[tuple[str, int, int]] = set()

    def count(self, text: str) -> int:
        return tokens.count_text(text, self.budget.encoding)

    def messages(self) -> list[dict[str, Any]]:
        """The prompt to send now: the branch and this answer's rounds, fitted."""
        assembled = run_chain(
            self.items + self.extra, budget=self.budget.tokens, chain=self.chain,
            strategies=plugins.get_context_strategies(), count=self.count, summaries=self.summaries,
            conversation_id=str(self.start.conversation_id), settings=self.settings)
        self._record(assembled)
        self.sent = assembled.tokens
        return render(assembled.items, vision=self.budget.vision, load_image=self._load_image)

    def extend(self, prompt: list[dict[str, Any]], step: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``prompt`` with a tool round's messages ``step`` (every round so far, on a resume);
        fitted again when they would cross the budget."""
        turn = self.items[-1].turn if self.items else 0
        group = max((item.group for item in self.items + self.extra), default=0) + 1
        added = [Item(role=message["role"], text=_text(message), message_id=None, group=group, turn=turn,
                      pinned=True, text_tokens=self.count(_text(message)) + tokens.MESSAGE_OVERHEAD
                      + (self.count(json.dumps(message["tool_calls"])) if message.get("tool_calls") else 0),
                      tool_calls=tuple(message["tool_calls"]) if message.get("tool_calls") else None,
                      tool_call_id=message.get("tool_call_id"))
                 for message in step]
        self.extra += added
        if self.sent + total(added) <= self.budget.tokens:
            self.sent += total(added)
            self.meta["prompt_tokens"] = self._sent_tokens()
            return prompt + step
        return self.messages()

    def _load_image(self, upload_id: str) -> str | None:
        """An attached image as a ``data:`` URL, or None when its bytes are gone."""
        from bestchat.uploads.storage import get_storage  # noqa: PLC0415

        if upload_id not in self.stored:
            return None
        mime, key = self.stored[upload_id]
        try:
            data = get_storage().read(key)
        except Exception:  # noqa: BLE001 - a missing file is a note in the prompt, not a failure
            log.warning("image %s could not be read for the prompt", upload_id, exc_info=True)
            return None
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

    def _sent_tokens(self) -> int:
        return self.sent + tokens.PROMPT_OVERHEAD + self.budget.tools

    def _record(self, assembled: Assembled) -> None:
        """A ``context_optimizations`` row per strategy that changed the prompt (once per
        answer for the same change), and the answer's meta."""
        rows = []
        for ran in assembled.ran:
            key = (ran.name, ran.before, ran.after)
            if key in self._recorded:
                continue
            self._recorded.add(key)
            rows.append(ContextOptimization(
                conversation_id=self.start.conversation_id, strategy=ran.name, input_tokens=ran.before,
                output_tokens=ran.after, details={**ran.note, "message_id": str(self.start.message_id)}))
        if rows:
            db.session.add_all(rows)
            db.session.commit()
        self.meta = {
            "chain": self.chain, "strategies": [ran.name for ran in assembled.ran],
            "prompt_tokens": assembled.tokens + tokens.PROMPT_OVERHEAD + self.budget.tools,
            "dropped": len(assembled.dropped), "summary_id": assembled.summary_id,
            **self.budget.as_json(),
        }


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _context_settings(app: Flask) -> dict[str, Any]:
    """The app's ``CONTEXT_*`` settings, read once per app (the strategies' ``settings``)."""
    cached = app.extensions.get(SETTINGS_KEY)
    if cached is None:
        cached = app.extensions[SETTINGS_KEY] = {name: value for name, value in app.config.items()
                                                  if name.startswith("CONTEXT_")}
    return dict(cached)


def _uploads(start: Claimed) -> tuple[dict[str, UploadFacts], dict[str, tuple[str, str]]]:
    """The owner's uploads the branch's messages attach, by id (a deleted one is absent), and
    each one's (mime, storage key) for reading an image's bytes."""
    ids = set()
    for entry in start.branch:
        for part in entry.parts or ():
            if isinstance(part, dict) and part.get("type") == "file" and part.get("upload_id"):
                try:
                    ids.add(uuid.UUID(str(part["upload_id"])))
                except ValueError:
                    continue
    if not ids:
        return {}, {}
    rows = db.session.execute(
        select(FileUpload.id, FileUpload.name, FileUpload.mime, FileUpload.details, FileUpload.text,
               FileUpload.text_tokens, FileUpload.storage_key)
        .where(FileUpload.id.in_(ids), FileUpload.user_id == start.user_id)).all()
    db.session.commit()
    facts = {str(row.id): UploadFacts(name=row.name, mime=row.mime,
                                      kind=(row.details or {}).get("kind") or _kind(row.mime),
                                      text=row.text, text_tokens=row.text_tokens)
             for row in rows}
    return facts, {str(row.id): (row.mime, row.storage_key) for row in rows}


def _kind(mime: str) -> str:
    return "image" if mime.startswith("image/") else "text"
