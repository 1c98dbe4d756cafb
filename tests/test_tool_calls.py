"""OpenAI-style streamed tool calls assembled from their fragments (bestchat.providers.tool_calls)."""

from __future__ import annotations

import pytest

from bestchat.providers.base import ProviderError
from bestchat.providers.tool_calls import ToolCallAssembler


def test_tool_calls_are_assembled_from_fragments_in_index_order():
    calls = ToolCallAssembler()
    calls.add(1, "b", "second", '{"x"')
    calls.add(0, "a", "first", "{}")
    calls.add(1, None, None, ": 1}")
    assembled = calls.calls("model")
    assert [(c.id, c.name, c.arguments) for c in assembled] == [("a", "first", {}), ("b", "second", {"x": 1})]


def test_a_call_without_arguments_has_an_empty_object():
    calls = ToolCallAssembler()
    calls.add(None, "a", "now", None)
    assert [(c.id, c.name, c.arguments) for c in calls.calls("model")] == [("a", "now", {})]


@pytest.mark.parametrize("arguments", ["[1, 2]", '{"x": ', "3"])
def test_tool_call_arguments_must_be_a_json_object(arguments):
    calls = ToolCallAssembler()
    calls.add(0, "a", "f", arguments)
    with pytest.raises(ProviderError, match="^model: the model called tool 'f' with arguments that are not a JSON object$"):
        calls.calls("model")
