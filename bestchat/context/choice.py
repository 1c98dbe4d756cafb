"""Which context strategies a conversation uses: its own choice (names, in order) or the
server's ``CONTEXT_STRATEGIES``; and what the installed plugins offer."""

from __future__ import annotations

from typing import Any

from flask import current_app

from bestchat import plugins
from bestchat.errors import Invalid

MAX_CHAIN = 8


def check_strategy_names(value: Any) -> list[str] | None:
    """A conversation's ``context_strategy`` as stored: None (the server's default), or the
    names of installed strategies in order (a single name is a chain of one). :class:`Invalid`
    for anything else, naming the unknown strategy."""
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or len(names) > MAX_CHAIN \
            or not all(isinstance(name, str) for name in names):
        raise Invalid("invalid_field", "'context_strategy' must be a strategy name, a list of names, or null",
                      param="context_strategy")
    installed = plugins.get_context_strategies()
    for name in names:
        if name not in installed:
            known = ", ".join(sorted(installed)) or "none installed"
            raise Invalid("invalid_field", f"'context_strategy': unknown strategy '{name}' ({known})",
                          param="context_strategy")
    return list(dict.fromkeys(names))


def strategies_json() -> dict[str, Any]:
    """The installed strategies and the server's default chain (``/api/v1/context-strategies``)."""
    installed = plugins.get_context_strategies()
    return {"strategies": [{"name": name, "description": cls.description, "plugin": cls.plugin}
                           for name, cls in sorted(installed.items())],
            "default": [name for name in current_app.config["CONTEXT_STRATEGIES"] if name in installed]}
