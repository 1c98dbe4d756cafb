"""The rules of tools: which tools a conversation offers, and how a call is decided.

- **Offered**: every registered tool (``register_tools``) except the operator's
  ``TOOLS_DISABLED`` and the conversation's ``disabled_tools``, when the model's provider
  supports tools.
- **Decided**: a user's standing choice for the tool, else for its risk level, else the
  default (``low``: always, ``medium``/``high``: ask). ``always`` is honoured only up to the
  operator's ceiling ``TOOL_AUTO_APPROVE_MAX_RISK`` (default ``medium``: a ``high`` call always
  asks); ``never`` is always honoured.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import select

from bestchat import plugins
from bestchat.errors import Invalid
from bestchat.extensions import db
from bestchat.models import AutoApprovalSetting
from bestchat.models.tools import Decision
from bestchat.tools.base import NAME_RE, RISKS, Tool

DEFAULT_DECISIONS = {"low": Decision.ALWAYS, "medium": Decision.ASK, "high": Decision.ASK}
MAX_DISABLED = 200


def enabled_tools() -> dict[str, Tool]:
    """The registered tools the operator did not disable, by name."""
    disabled = set(current_app.config["TOOLS_DISABLED"] or ())
    return {name: tool for name, tool in plugins.get_tools().items() if name not in disabled}


def offered_tools(disabled_tools: Iterable[str]) -> list[Tool]:
    """The tools a conversation offers its model, in name order."""
    off = set(disabled_tools or ())
    return [tool for name, tool in sorted(enabled_tools().items()) if name not in off]


def check_tool_names(names: Any) -> list[str]:
    """A conversation's ``disabled_tools``: a list of installed tool names (deduplicated)."""
    if not isinstance(names, list) or len(names) > MAX_DISABLED:
        raise Invalid("invalid_field", f"'disabled_tools' must be a list of at most {MAX_DISABLED} tool names")
    known = plugins.get_tools()
    for name in names:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise Invalid("invalid_field", "'disabled_tools' must hold tool names")
        if name not in known:
            raise Invalid("unknown_tool", f"no tool named {name!r} is installed", param="disabled_tools")
    return sorted(set(names))


def ceiling() -> int:
    """The index in :data:`RISKS` of the highest risk ``always`` may cover (-1: none)."""
    value = current_app.config["TOOL_AUTO_APPROVE_MAX_RISK"]
    return RISKS.index(value) if value in RISKS else -1


def standing_choices(user_id: uuid.UUID) -> tuple[dict[str, str], dict[str, str]]:
    """The user's choices: (by tool name, by risk level)."""
    by_tool: dict[str, str] = {}
    by_risk: dict[str, str] = {}
    for setting in db.session.scalars(select(AutoApprovalSetting).where(AutoApprovalSetting.user_id == user_id)):
        if setting.tool:
            by_tool[setting.tool] = setting.decision
        elif setting.risk_level:
            by_risk[setting.risk_level] = setting.decision
    return by_tool, by_risk


def decision_for(tool: Tool, choices: tuple[dict[str, str], dict[str, str]]) -> Decision:
    """What happens to a call of ``tool`` for a user with ``choices`` (see the module docstring)."""
    by_tool, by_risk = choices
    chosen = Decision(by_tool.get(tool.name) or by_risk.get(tool.risk) or DEFAULT_DECISIONS[tool.risk])
    if chosen == Decision.ALWAYS and RISKS.index(tool.risk) > ceiling():
        return Decision.ASK
    return chosen


def run_context(app_config: Any, tool: Tool) -> dict[str, Any]:
    """What a running tool is told (``bestchat.tools.context``): the outbound policy's lists
    (an ordinary user's: no admin allowances) and the URL-fetch settings."""
    return {
        "tool": tool.name,
        "outbound": {"allow": list(app_config["OUTBOUND_ALLOW"] or ()),
                     "deny": list(app_config["OUTBOUND_DENY"] or ()), "admin_allow": []},
        "url_fetch": {"allow_hosts": list(app_config["URL_FETCH_ALLOW_HOSTS"] or ()),
                      "deny_hosts": list(app_config["URL_FETCH_DENY_HOSTS"] or ()),
                      "max_bytes": int(app_config["URL_FETCH_MAX_BYTES"]),
                      "timeout": float(app_config["URL_FETCH_TIMEOUT"]),
                      "max_redirects": int(app_config["URL_FETCH_MAX_REDIRECTS"])},
    }
