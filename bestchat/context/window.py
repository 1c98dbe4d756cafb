"""A model's token budget for a prompt: its input window less what is kept free.

The window comes from, in order: the ``context_window`` option (a conversation's settings,
then its provider config's options), the provider plugin
(:meth:`bestchat.providers.base.Provider.context_window`), litellm's model map read as data
(:mod:`bestchat.providers.model_map`), then ``CONTEXT_DEFAULT_WINDOW``. The budget is the
window less a reserve for the answer (the answer's ``max_tokens`` when set, else
``CONTEXT_ANSWER_RESERVE``; at most half the window either way, and at most a quarter for
the default), less the offered tools' schemas, less the prompt's own overhead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from flask import current_app

from bestchat.context import tokens
from bestchat.providers import model_map
from bestchat.providers.base import Provider


@dataclass(frozen=True)
class Budget:
    """What a prompt for one model may hold, and how that was worked out."""

    window: int
    reserve: int  # kept for the answer
    tools: int  # the offered tools' schemas
    encoding: str  # the tiktoken encoding counts are made with
    vision: bool  # whether the model takes image parts

    @property
    def tokens(self) -> int:
        """The most tokens the prompt's messages may use."""
        return self.window - self.reserve - self.tools - tokens.PROMPT_OVERHEAD

    def as_json(self) -> dict[str, Any]:
        return {"window": self.window, "budget": self.tokens, "reserve": self.reserve,
                "tools": self.tools, "encoding": self.encoding}


def budget_for(provider: Provider, model: str, settings: Mapping[str, Any] | None = None,
               tool_schemas: list[dict[str, Any]] | None = None) -> Budget:
    """The budget of ``model`` served by ``provider`` with a conversation's ``settings``."""
    settings = settings or {}
    config = current_app.config
    window = _window(provider, model, settings)
    encoding = tokens.encoding_name(provider.encoding(model))
    asked = settings.get("max_tokens") or provider.settings.options.get("max_tokens")
    if isinstance(asked, int) and asked > 0:
        reserve = min(asked, window // 2)
    else:
        reserve = min(int(config["CONTEXT_ANSWER_RESERVE"]), window // 4)
    tools = _schema_tokens(json.dumps(tool_schemas, sort_keys=True), encoding) if tool_schemas else 0
    return Budget(window=window, reserve=reserve, tools=tools, encoding=encoding,
                  vision=_vision(provider, model))


@lru_cache(maxsize=64)
def _schema_tokens(schemas: str, encoding: str) -> int:
    """The tokens of the offered tools' schemas (the same few sets, counted once each)."""
    return tokens.count_text(schemas, encoding)


def _window(provider: Provider, model: str, settings: Mapping[str, Any]) -> int:
    for given in (settings.get("context_window"), provider.settings.options.get("context_window")):
        if isinstance(given, int) and given > 0:
            return given
    known = provider.context_window(model)
    if known:
        return known
    facts = model_map.lookup(model)
    if facts is not None and facts.input_window:
        return facts.input_window
    return int(current_app.config["CONTEXT_DEFAULT_WINDOW"])


def _vision(provider: Provider, model: str) -> bool:
    said = provider.accepts_images(model)
    if said is not None:
        return said
    if provider.supports_vision:
        return True
    facts = model_map.lookup(model)
    return bool(facts and facts.vision)
