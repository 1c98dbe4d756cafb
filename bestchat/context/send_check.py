"""The check a send makes before anything is stored: does the newest message fit at all?

A message that, with its files and the conversation's system prompt, is bigger than the
model's budget (:mod:`bestchat.context.window`) can never be answered: no strategy may drop
it. The send is refused with :class:`bestchat.context.base.ContextTooLong` (400
``context_length_exceeded``) and nothing is stored. Messages under :data:`ALWAYS_FITS` tokens
skip the check (no model's budget is that small in practice), so an ordinary send reads
nothing more; the generation job enforces the budget exactly either way.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from sqlalchemy import select

from bestchat.context import tokens
from bestchat.context.base import ContextTooLong
from bestchat.context.items import file_tags, image_cost
from bestchat.context.window import budget_for
from bestchat.errors import DomainError
from bestchat.extensions import db
from bestchat.models import Conversation, FileUpload
from bestchat.providers import registry
from bestchat.providers.base import ProviderError

ALWAYS_FITS = 1000
def message_cost(token_count: int, uploads: list[FileUpload]) -> int:
    """What a message of ``token_count`` tokens with ``uploads`` attached costs in a prompt,
    priced as the prompt prices them (:func:`bestchat.context.items.build_items`)."""
    image = int(current_app.config["CONTEXT_IMAGE_TOKENS"])
    cost = token_count
    for upload in uploads:
        if upload.mime.startswith("image/"):
            cost += image_cost(upload.name, image, tokens.count_text)
        else:
            opening, closing = file_tags(upload.name, str(upload.id))
            cost += tokens.count_text(opening) + (upload.text_tokens or 0) + tokens.count_text(closing)
    return cost


def check_send(user_id: uuid.UUID, conversation_id: uuid.UUID, model: str | None, needed: int) -> None:
    """Refuse a send whose message costs ``needed`` tokens when it cannot fit the budget of
    the model that would answer it (``model``, else the conversation's). Another user's or an
    unknown conversation is left to the store (404)."""
    if needed < ALWAYS_FITS:
        return
    row = db.session.execute(
        select(Conversation.user_id, Conversation.model, Conversation.system_prompt, Conversation.settings,
               Conversation.disabled_tools).where(Conversation.id == conversation_id)).first()
    if row is None or row.user_id != user_id:
        return
    check_fits(user_id, model or row.model, needed, system_prompt=row.system_prompt,
               settings=row.settings or {}, disabled_tools=row.disabled_tools or [])


def check_fits(user_id: uuid.UUID, model: str | None, needed: int, *, system_prompt: str | None,
               settings: dict[str, Any], disabled_tools: list[str]) -> None:
    """:class:`ContextTooLong` when ``needed`` tokens and the system prompt exceed the budget of
    ``model``'s first target. A model that cannot be resolved is left to the generation (it
    fails with its own error, as it would for a short message)."""
    if needed < ALWAYS_FITS:
        return
    from bestchat.services.tool_rules import offered_tools  # noqa: PLC0415 - tools import services

    try:
        targets = registry.resolve_targets(user_id, model)
    except (DomainError, ProviderError):
        return
    if not targets:
        return
    target = targets[0]
    schemas = [tool.schema() for tool in offered_tools(disabled_tools)] if target.provider.supports_tools else None
    budget = budget_for(target.provider, target.model, settings, schemas)
    needed += tokens.message_tokens(system_prompt, budget.encoding) if system_prompt else 0
    if needed > budget.tokens:
        raise ContextTooLong(needed, budget.tokens)
