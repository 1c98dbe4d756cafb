"""Tools (``/api/v1/tools``), decisions on tool calls (``/api/v1/tool-executions/<id>/approve``
and ``/deny``) and the user's standing approval choices (``/api/v1/tool-approvals``).

Thin: input is checked here, the rules are :mod:`bestchat.services.tools`'s. A decision on
another user's call is answered exactly like an unknown id (404); one on a call that no longer
waits for a person is a 409.
"""

from __future__ import annotations

from flask import g, request

from bestchat.api import bp
from bestchat.api.openapi import array, documented, nullable, obj, ref, string
from bestchat.security.authn import login_required
from bestchat.serializers import auto_approval_json, tool_execution_json
from bestchat.services import tools
from bestchat.tools.base import RISKS
from bestchat.validation import field, json_body, parse_uuid

DECISIONS = ("always", "ask", "never")

_DECISION_BODY = obj({"remember": nullable({"type": "boolean"})})
_DECIDED = {200: obj({"execution": ref("ToolExecution")}, ("execution",))}


@bp.get("/tools")
@documented(responses={200: obj({"tools": array(ref("Tool")), "sandbox": ref("Sandbox")}, ("tools", "sandbox"))})
@login_required
def list_tools():
    """The tools this user's conversations may offer, and whether this server can sandbox them.

    Each tool has its risk, whether it needs the network, whether it can run here
    (``runnable``: a ``medium`` or ``high`` tool needs the sandbox), its ``timeout`` in seconds
    and the user's effective ``approval`` (``always``, ``ask`` or ``never``). ``sandbox`` says which isolation runs tools
    (``method``: ``bwrap`` or ``none``) and why.
    """
    return {"tools": tools.list_tools(g.user.id), "sandbox": tools.sandbox_json()}


def _decide(execution_id: str, decision: str):
    remember = False
    if request.get_data(cache=True):  # the body is optional
        remember = field(json_body(), "remember", bool, required=False, default=False)
    execution = tools.decide(g.user.id, str(parse_uuid(execution_id, "tool execution")), decision,
                             remember=remember)
    return {"execution": tool_execution_json(execution)}


@bp.post("/tool-executions/<execution_id>/approve")
@documented(body=_DECISION_BODY, body_required=False, responses=_DECIDED)
@login_required
def approve_execution(execution_id: str):
    """Approve a tool call that waits for the user; the answer goes on. Body (optional):
    {remember}: also always allow this tool from now on. 200 {execution}; 409 when the call
    no longer waits."""
    return _decide(execution_id, "approve")


@bp.post("/tool-executions/<execution_id>/deny")
@documented(body=_DECISION_BODY, body_required=False, responses=_DECIDED)
@login_required
def deny_execution(execution_id: str):
    """Deny a tool call that waits for the user; the model is told it was refused. Body
    (optional): {remember}: also never allow this tool from now on. 200 {execution}; 409 when
    the call no longer waits."""
    return _decide(execution_id, "deny")


@bp.get("/tool-approvals")
@documented(responses={200: obj({"settings": array(ref("AutoApproval"))}, ("settings",))})
@login_required
def list_tool_approvals():
    """The user's standing approval choices, per tool and per risk level."""
    return {"settings": [auto_approval_json(s) for s in tools.auto_approvals(g.user.id)]}


@bp.put("/tool-approvals")
@documented(body=obj({"tool": nullable(string(100)), "risk_level": nullable(string(enum=list(RISKS))),
                      "decision": string(enum=list(DECISIONS))}, ("decision",)),
            responses={200: ref("AutoApproval")})
@login_required
def set_tool_approval():
    """Set the choice for one tool ({tool, decision}) or one risk level ({risk_level,
    decision}); ``decision`` is ``always``, ``ask`` or ``never``. Replaces an earlier choice for
    the same tool or level. ``always`` counts only up to the operator's ceiling (by default a
    ``high`` risk call always asks)."""
    body = json_body()
    setting = tools.set_auto_approval(
        g.user.id, tool=field(body, "tool", required=False, max_length=100),
        risk_level=field(body, "risk_level", required=False, max_length=16),
        decision=field(body, "decision", max_length=16))
    return auto_approval_json(setting)


@bp.delete("/tool-approvals/<setting_id>")
@documented(responses={204: None})
@login_required
def delete_tool_approval(setting_id: str):
    """Forget one choice: the tool (or risk level) goes back to the default. 204."""
    tools.delete_auto_approval(g.user.id, parse_uuid(setting_id, "tool approval"))
    return "", 204
