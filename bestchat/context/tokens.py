"""Token counts, with tiktoken: one encoding per process, loaded once, shared by every count.

A message's count is made once, when it is written (:func:`message_tokens`, stored in
``messages.token_count``; an upload's text in ``file_uploads.text_tokens``), and prompts are
assembled from the stored counts (:mod:`bestchat.context.assemble`), never recounted.

The encoding is the model's own when its provider plugin names one
(:meth:`bestchat.providers.base.Provider.encoding`), else ``CONTEXT_DEFAULT_ENCODING``
(``o200k_base``, the encoding of OpenAI's current models). tiktoken's encoding files come
with the locked ``litellm`` distribution (read as files: litellm is not imported), so no
download is ever attempted; ``TIKTOKEN_CACHE_DIR`` set by the operator wins. Without an
encoding file the count is an estimate (four characters a token) and a warning is logged
once.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import threading
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_ENCODING = "o200k_base"
# What the chat format adds to each message (role and separators), and to the whole prompt
# (the assistant's reply priming), in tokens: OpenAI's documented figures, rounded up.
MESSAGE_OVERHEAD = 4
PROMPT_OVERHEAD = 3
ESTIMATE = "estimate"  # the encoding name reported when no encoding file is available

_lock = threading.Lock()


def _point_tiktoken_at_bundled_files() -> None:
    """Set ``TIKTOKEN_CACHE_DIR`` to the encodings litellm ships, unless the operator set it."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    for location in (spec.submodule_search_locations or []) if spec else []:
        bundled = os.path.join(location, "litellm_core_utils", "tokenizers")
        if os.path.isdir(bundled):
            os.environ["TIKTOKEN_CACHE_DIR"] = bundled
            return


@lru_cache(maxsize=8)
def encoding(name: str) -> Any | None:
    """The tiktoken encoding ``name`` (loaded once per process), or None when unavailable."""
    with _lock:
        _point_tiktoken_at_bundled_files()
        try:
            import tiktoken  # noqa: PLC0415 - loaded on first use, then cached

            return tiktoken.get_encoding(name)
        except Exception:  # noqa: BLE001 - no file, unknown name, no network: estimate instead
            log.warning("tiktoken encoding %r is not available; token counts are estimated", name)
            return None


def encoding_name(name: str | None = None) -> str:
    """The encoding counts are made with: ``name`` when it is available, else the default,
    else :data:`ESTIMATE`."""
    for candidate in (name, default_encoding()):
        if candidate and encoding(candidate) is not None:
            return candidate
    return ESTIMATE


def default_encoding() -> str:
    """``CONTEXT_DEFAULT_ENCODING`` of the current app (outside one, :data:`DEFAULT_ENCODING`)."""
    from flask import current_app, has_app_context  # noqa: PLC0415

    if has_app_context():
        return current_app.config.get("CONTEXT_DEFAULT_ENCODING") or DEFAULT_ENCODING
    return DEFAULT_ENCODING


def count_text(text: str, name: str | None = None) -> int:
    """The tokens of ``text`` in encoding ``name`` (None: the default). Special-token text
    (``<|endoftext|>``) counts as ordinary text, as a provider receives it."""
    if not text:
        return 0
    chosen = encoding_name(name)
    if chosen == ESTIMATE:
        return math.ceil(len(text) / 4)
    return len(encoding(chosen).encode_ordinary(text))


def message_tokens(text: str, name: str | None = None) -> int:
    """What a message of ``text`` costs in a prompt: its tokens plus :data:`MESSAGE_OVERHEAD`."""
    return count_text(text, name) + MESSAGE_OVERHEAD


def warm(name: str | None = None) -> None:
    """Load the encoding now (at process start), so no request pays for it."""
    encoding_name(name)
