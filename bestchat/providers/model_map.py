"""litellm's model map, read as data: a model's input window, whether it takes images, and its
price per token.

The locked ``litellm`` distribution ships ``model_prices_and_context_window_backup.json`` (the
map litellm itself uses offline). It is read as a file, once per process, keeping only the
fields BestChat uses, so the web tier learns a model's window and price without importing
litellm.
Keys are litellm's model names (``gpt-4o``, ``ollama/llama3``...): :func:`lookup` tries the
model as given, then without its first ``<provider>/`` prefix.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from functools import lru_cache
from typing import NamedTuple

log = logging.getLogger(__name__)

MAP_FILE = "model_prices_and_context_window_backup.json"


class ModelFacts(NamedTuple):
    """What the map says of one model (None: it does not say)."""

    input_window: int | None
    vision: bool | None
    # USD per token, as the map writes them (litellm's own names).
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None


def _map_path() -> str | None:
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(location, MAP_FILE)
        if os.path.isfile(path):
            return path
    return None


@lru_cache(maxsize=1)
def _facts() -> dict[str, ModelFacts]:
    path = _map_path()
    if path is None:
        log.info("litellm's model map is not installed; model windows come from providers and settings")
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            raw = json.load(file)
    except (OSError, ValueError) as error:
        log.warning("litellm's model map could not be read (%s)", error)
        return {}
    facts = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        window = entry.get("max_input_tokens") or entry.get("max_tokens")
        vision = entry.get("supports_vision")
        facts[name] = ModelFacts(window if isinstance(window, int) and window > 0 else None,
                                 vision if isinstance(vision, bool) else None,
                                 _cost(entry.get("input_cost_per_token")),
                                 _cost(entry.get("output_cost_per_token")),
                                 _cost(entry.get("cache_read_input_token_cost")))
    return facts


def _cost(value: object) -> float | None:
    """A per-token price from the map (a non-negative number), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


def lookup(model: str) -> ModelFacts | None:
    """The map's facts for ``model`` (as given, else without its first ``provider/`` prefix)."""
    facts = _facts()
    found = facts.get(model)
    if found is None and "/" in model:
        found = facts.get(model.split("/", 1)[1])
    return found


def warm() -> None:
    """Read the map now (at process start), so no generation pays for it."""
    _facts()
