"""Tool functions for tests/test_tool_loop.py: module-level, so the sandboxed runner can import
them by module and name."""

from __future__ import annotations

from bestchat.tools.base import tool


def add(a: int, b: int) -> int:
    """Add two integers.

    :param a: the first
    :param b: the second
    """
    return a + b


@tool(risk="medium")
def shout(text: str) -> str:
    """Say ``text`` in capitals."""
    return text.upper()
