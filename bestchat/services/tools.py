"""The tool service: what REST, the WebSocket and the reaper ask of tools.

- :func:`list_tools`: the tools a user may use (those their groups allow:
  :mod:`bestchat.services.groups`), with the user's approval choice and whether the sandbox can
  run them.
- :func:`decide`: a person approves or denies a call waiting for them; the answer it belongs
  to goes on as soon as no call of its round waits (:func:`resume_if_decided`).
- Standing approval choices (:func:`auto_approvals`, :func:`set_auto_approval`,
  :func:`delete_auto_approval`), per tool or per risk level.
- :func:`expire_approvals`: a call nobody decided within ``TOOL_APPROVAL_TIMEOUT`` counts as
  denied (``timed_out``), run by the reaper.

Every decision is audit-logged. The generation that makes and runs the calls is
:mod:`bestchat.services.tool_loop`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import select, update

from bestchat.errors import Conflict, Invalid, NotFound
from bestchat.extensions import db
from bestchat.models import AutoApprovalSetting, Message, ToolExecution, User
from bestchat.models.base import utcnow
from bestchat.models.message_status import MessageStatus
from bestchat.models.tools import DecidedBy, Decision, ExecutionStatus
from bestchat.services import audit, groups, tool_rules
from bestchat.tools.base import RISKS, Tool
from bestchat.tools.sandbox import isolation, runnable_risks

log = logging.getLogger(__name__)

DECISIONS = {"approve": ExecutionStatus.APPROVED, "deny": ExecutionStatus.DENIED}


# ---- what a user may use ----------------------------------------------------------------

def runnable(tool: Tool) -> bool:
    """Whether this server's sandbox can run ``tool`` (a risky tool needs isolation)."""
    return tool.risk in runnable_risks(current_app.config)


def tool_json(tool: Tool, *, decision: str) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters,
            "risk": tool.risk, "network": tool.network, "plugin": tool.plugin,
            "timeout": tool.timeout or current_app.config["TOOL_TIMEOUT"],
            "runnable": runnable(tool), "approval": decision}


def list_tools(user_id: uuid.UUID) -> list[dict[str, Any]]:
    """The tools the user's conversations may offer: the enabled ones their groups allow."""
    choices = tool_rules.standing_choices(user_id)
    allowed = groups.access(user_id, admin=lambda: db.session.get(User, user_id).is_admin)
    db.session.commit()
    return [tool_json(tool, decision=tool_rules.decision_for(tool, choices).value)
            for tool in tool_rules.offered_tools(()) if allowed.allows_tool(tool.name)]


def sandbox_json() -> dict[str, Any]:
    found = isolation(current_app.config)
    return {"available": found.available, "method": found.method, "detail": found.detail}


# ---- decisions --------------------------------------------------------------------------

def owned(model: type, user_id: uuid.UUID, key: Any, what: str) -> Any:
    """The user's row ``key`` of ``model``; :class:`NotFound` for an unknown id, a malformed
    one or another user's (the same answer: nothing leaks)."""
    try:
        row = db.session.get(model, uuid.UUID(str(key)))
    except ValueError:
        raise NotFound(what) from None
    if row is None or row.user_id != user_id:
        raise NotFound(what)
    return row


def decide(user_id: uuid.UUID, execution_id: Any, decision: str, remember: bool = False) -> ToolExecution:
    """Approve or deny the user's waiting call; with ``remember``, the choice stands for the
    tool from now on (``always`` / ``never``, within the operator's ceiling)."""
    if decision not in DECISIONS:
        raise Invalid("invalid_field", "'decision' must be 'approve' or 'deny'", param="decision")
    execution = owned(ToolExecution, user_id, execution_id, "tool execution")
    status = DECISIONS[decision]
    changed = db.session.execute(
        update(ToolExecution)
        .where(ToolExecution.id == execution.id, ToolExecution.status == ExecutionStatus.PENDING_APPROVAL.value)
        .values(status=status.value, approver_id=user_id, decided_by=DecidedBy.USER.value,
                expires_at=None, updated_at=utcnow(),
                **({"finished_at": utcnow()} if status == ExecutionStatus.DENIED else {}))
        .execution_options(synchronize_session=False)).rowcount
    if not changed:
        db.session.rollback()
        raise Conflict("not_pending", "this tool call is not waiting for a decision")
    if remember:
        _upsert_setting(user_id, tool=execution.tool, risk_level=None,
                        decision=Decision.ALWAYS if status == ExecutionStatus.APPROVED else Decision.NEVER)
    audit.record("tool.decide", user_id, "tool_execution", execution.id,
                 tool=execution.tool, decision=decision, remember=bool(remember))
    db.session.commit()
    db.session.refresh(execution)
    resume_if_decided(execution.message_id)
    return execution


def resume_if_decided(message_id: uuid.UUID) -> bool:
    """Put a ``waiting`` answer back to work when none of its calls waits for a person: it
    goes ``queued`` and a job takes it. True if this call resumed it (only one caller can)."""
    pending = db.session.scalar(select(ToolExecution.id).where(
        ToolExecution.message_id == message_id,
        ToolExecution.status == ExecutionStatus.PENDING_APPROVAL.value).limit(1))
    if pending is not None:
        db.session.commit()
        return False
    resumed = db.session.execute(
        update(Message).where(Message.id == message_id, Message.status == MessageStatus.WAITING.value)
        .values(status=MessageStatus.QUEUED.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if not resumed:
        return False
    message = db.session.get(Message, message_id)
    from bestchat.dispatch import get_dispatcher  # noqa: PLC0415

    try:
        get_dispatcher().announce_and_start(message, [])
    except Exception:  # noqa: BLE001 - the reaper's next pass finds it queued and ends it
        log.exception("could not resume answer %s after its tool approvals", message_id)
    return True


def expire_approvals(limit: int = 500) -> int:
    """Calls whose approval deadline passed count as denied (``timed_out``); their answers go
    on. Answers left ``waiting`` with nothing to wait for (a resume that was lost) go on too.
    Returns how many calls expired."""
    now = utcnow()
    expired = list(db.session.execute(
        select(ToolExecution.id, ToolExecution.message_id, ToolExecution.user_id, ToolExecution.tool)
        .where(ToolExecution.status == ExecutionStatus.PENDING_APPROVAL.value, ToolExecution.expires_at < now)
        .limit(limit)))
    for execution_id, _message_id, user_id, tool in expired:
        db.session.execute(
            update(ToolExecution)
            .where(ToolExecution.id == execution_id,
                   ToolExecution.status == ExecutionStatus.PENDING_APPROVAL.value)
            .values(status=ExecutionStatus.TIMED_OUT.value, decided_by=DecidedBy.TIMEOUT.value,
                    error="no decision in time: treated as denied", finished_at=now, updated_at=now)
            .execution_options(synchronize_session=False))
        audit.record("tool.decide", None, "tool_execution", execution_id, tool=tool,
                     decision="timed_out", owner_id=str(user_id))
    db.session.commit()
    undecided = select(ToolExecution.id).where(
        ToolExecution.message_id == Message.id, ToolExecution.status == ExecutionStatus.PENDING_APPROVAL.value)
    ready = set(db.session.scalars(select(Message.id).where(
        Message.status == MessageStatus.WAITING.value, ~undecided.exists()).limit(limit)).all())
    db.session.commit()
    for message_id in ready:
        resume_if_decided(message_id)
    return len(expired)


# ---- standing choices -------------------------------------------------------------------

def auto_approvals(user_id: uuid.UUID) -> list[AutoApprovalSetting]:
    return list(db.session.scalars(select(AutoApprovalSetting).where(AutoApprovalSetting.user_id == user_id)
                                   .order_by(AutoApprovalSetting.created_at)))


def set_auto_approval(user_id: uuid.UUID, *, tool: str | None = None, risk_level: str | None = None,
                      decision: str) -> AutoApprovalSetting:
    """The user's standing choice for one tool or one risk level (replacing the one before)."""
    if (tool is None) == (risk_level is None):
        raise Invalid("invalid_field", "give exactly one of 'tool' and 'risk_level'")
    if tool is not None and tool not in tool_rules.enabled_tools():
        raise Invalid("unknown_tool", f"no tool named {tool!r} is installed", param="tool")
    if risk_level is not None and risk_level not in RISKS:
        raise Invalid("invalid_field", f"'risk_level' must be one of {', '.join(RISKS)}", param="risk_level")
    if decision not in {d.value for d in Decision}:
        raise Invalid("invalid_field", "'decision' must be 'always', 'ask' or 'never'", param="decision")
    setting = _upsert_setting(user_id, tool=tool, risk_level=risk_level, decision=Decision(decision))
    audit.record("tool.auto_approval", user_id, "tool" if tool else "risk_level", tool or risk_level,
                 decision=decision)
    db.session.commit()
    return setting


def delete_auto_approval(user_id: uuid.UUID, setting_id: Any) -> None:
    setting = owned(AutoApprovalSetting, user_id, setting_id, "tool approval setting")
    db.session.delete(setting)
    audit.record("tool.auto_approval", user_id, "tool" if setting.tool else "risk_level",
                 setting.tool or setting.risk_level, decision="deleted")
    db.session.commit()


def _upsert_setting(user_id: uuid.UUID, *, tool: str | None, risk_level: str | None,
                    decision: Decision) -> AutoApprovalSetting:
    setting = db.session.scalar(select(AutoApprovalSetting).where(
        AutoApprovalSetting.user_id == user_id,
        AutoApprovalSetting.tool.is_(None) if tool is None else AutoApprovalSetting.tool == tool,
        AutoApprovalSetting.risk_level.is_(None) if risk_level is None else AutoApprovalSetting.risk_level == risk_level))
    if setting is None:
        setting = AutoApprovalSetting(user_id=user_id, tool=tool, risk_level=risk_level, decision=decision.value)
        db.session.add(setting)
    else:
        setting.decision = decision.value
    db.session.flush()
    return setting


# ---- reading calls ----------------------------------------------------------------------

def executions_of_messages(message_ids: Iterable[uuid.UUID]) -> dict[str, list[ToolExecution]]:
    """The calls of each message (by message id as text), oldest first."""
    keys = list(message_ids)
    found: dict[str, list[ToolExecution]] = {}
    if not keys:
        return found
    for execution in db.session.scalars(select(ToolExecution).where(ToolExecution.message_id.in_(keys))
                                        .order_by(ToolExecution.created_at, ToolExecution.id)):
        found.setdefault(str(execution.message_id), []).append(execution)
    return found
