"""What the server hands a running tool: its outbound policy lists, the URL-fetch limits and
the tool's name.

The runner (``bestchat/tools/runner.py``) calls :func:`set_context` in the sandboxed process
before it calls the tool; a tool reads it with :func:`get_context`. In any other process the
context is empty.
"""

from __future__ import annotations

import copy
from typing import Any

_context: dict[str, Any] = {}


def get_context() -> dict[str, Any]:
    """The context the server passed for this run (a copy; ``{}`` outside a tool run)."""
    return copy.deepcopy(_context)


def set_context(ctx: dict[str, Any]) -> None:
    """Set the context of this process's tool run (the runner calls it once)."""
    global _context
    _context = dict(ctx or {})
