"""The base class of context strategies: given a conversation's messages and a token budget,
return the messages to send (trimmed, summarized...), never more than the budget allows."""

from __future__ import annotations

from typing import Any, ClassVar


class ContextStrategy:
    """Subclasses set ``name`` (and ``description``) and implement :meth:`fit`.

    ``plugin`` is stamped by the registry with the name of the plugin that registered it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    plugin: ClassVar[str | None] = None

    def fit(self, messages: list[dict[str, Any]], max_tokens: int) -> list[dict[str, Any]]:
        """The messages to send so that they fit in ``max_tokens`` (system prompt first, the
        latest user message always kept). ``messages`` are OpenAI-style role/content dicts."""
        raise NotImplementedError
