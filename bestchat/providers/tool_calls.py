"""Assembling OpenAI-style streamed tool calls: fragments arrive by ``index`` (an id and a name
once, the arguments' JSON in pieces) and become complete :class:`ToolCall` objects at the end."""

from __future__ import annotations

import json

from bestchat.providers.base import ProviderError, ToolCall


class ToolCallAssembler:
    """Accumulates OpenAI-style tool-call fragments (streamed by ``index``) into ToolCalls."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, index: int | None, call_id: str | None, name: str | None, arguments: str | None) -> None:
        call = self._calls.setdefault(index or 0, {})
        if call_id:
            call["id"] = call_id
        if name:
            call["name"] = call.get("name", "") + name
        call["arguments"] = call.get("arguments", "") + (arguments or "")

    def calls(self, who: str) -> list[ToolCall]:
        """The complete calls in index order; arguments that are not a JSON object are an error."""
        return [self._finish(self._calls[index], who) for index in sorted(self._calls)]

    @staticmethod
    def _finish(call: dict[str, str], who: str) -> ToolCall:
        name = call.get("name", "")
        try:
            arguments = json.loads(call.get("arguments") or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise ProviderError(f"{who}: the model called tool {name!r} with arguments that are not a JSON object")
        return ToolCall(id=call.get("id", ""), name=name, arguments=arguments)
