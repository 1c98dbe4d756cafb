"""The tool-call loop of a generation: the model asks for tools, they run, the results go back.

A generation whose conversation offers tools (:func:`bestchat.services.tool_rules.offered_tools`)
streams each model round with their schemas. When a round ends with tool calls,
:meth:`ToolLoop.run_round` makes each call a ``tool_executions`` row and decides it: invalid
arguments or an unknown tool fail at once (the error goes back to the model), a standing
choice approves or denies it, otherwise the call waits for its owner
(``tool.approval_required``). Approved calls run in the sandbox
(:func:`bestchat.tools.sandbox.run_tool`), never in this process, and their results become
``tool`` messages of the next round.

When a call waits for a person the generation *pauses*: its text so far is published and
saved, the rounds it made are kept in the answer's ``parts`` (``{"type": "tool_round"}``), the
answer becomes ``waiting`` and the job ends, so the worker's slot is free. A decision (or
the approval timeout) puts the answer back to ``queued`` (:mod:`bestchat.services.tools`), and
the next job rebuilds the rounds from ``parts`` and the rows (:meth:`ToolLoop.resume`), runs the
approved calls and goes on.

Each call is published in the message's stream: ``tool.call`` when it is made and when it
starts running, ``tool.approval_required`` when it waits, ``tool.result`` when it is done
(a replay shows them in order with the chunks). Each finished call is audit-logged with a
digest of its arguments, and its run time counts in the round's usage.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from flask import Flask
from sqlalchemy import select, update

from bestchat.extensions import db
from bestchat.models import ToolExecution
from bestchat.models.base import utcnow
from bestchat.models.tools import EXECUTION_DONE, DecidedBy, Decision, ExecutionStatus
from bestchat.providers.base import ProviderError, ToolCall
from bestchat.serializers import tool_execution_json
from bestchat.services import audit, tool_rules
from bestchat.streaming import events
from bestchat.tools.base import Tool, ToolArgumentsInvalid

ROUND_PART = "tool_round"
# The most of a tool's result (as JSON text) a model is given back.
RESULT_MAX_CHARS = 32_000
DENIED_TEXT = "the user denied this tool call"


class TooManyRounds(ProviderError):
    """The model kept asking for tools past ``TOOLS_MAX_ROUNDS``: the answer ends ``failed``
    with the text it had."""

    code = "tool_rounds"


@dataclass
class RoundUsage:
    """One model round's tokens and its tools' run time (a usage row each)."""

    round: int
    target: Any = None
    usage: Any = None
    tool_ms: int = 0


@dataclass
class Paused:
    """The round's calls wait for a person: the answer's new ``parts``."""

    parts: list[dict[str, Any]] = field(default_factory=list)


class ToolLoop:
    """The tools of one generation and the rounds it made.

    ``emit(build)`` publishes an event in the message's stream after its pending text
    (:meth:`bestchat.streaming.frame_writer.Running.emit`)."""

    def __init__(self, app: Flask, *, message_id: uuid.UUID, conversation_id: uuid.UUID,
                 user_id: uuid.UUID, tools: list[Tool], parts: list[dict[str, Any]],
                 emit: Callable[[Callable[[int], dict[str, Any]]], None]):
        self.app = app
        self.message_id = message_id
        self.conversation_id = str(conversation_id)
        self.user_id = user_id
        self.tools = {tool.name: tool for tool in tools}
        self.emit = emit
        self.parts = [part for part in parts if part.get("type") != ROUND_PART]
        self.rounds = [part for part in parts if part.get("type") == ROUND_PART]
        self.max_rounds = int(app.config["TOOLS_MAX_ROUNDS"])
        self._standing: tuple[dict[str, str], dict[str, str]] | None = None  # read on first need

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self.tools.values()]

    @property
    def next_round(self) -> int:
        return len(self.rounds)

    def all_parts(self) -> list[dict[str, Any]]:
        return self.parts + self.rounds

    # ---- a new round --------------------------------------------------------------------

    def run_round(self, text: str, calls: list[ToolCall], usage: RoundUsage) -> list[dict[str, Any]] | Paused:
        """Make, decide and run the round's calls; the messages that carry their results to
        the model, or :class:`Paused` when one waits for a person."""
        if self.next_round >= self.max_rounds:
            raise TooManyRounds(f"the model asked for tools more than {self.max_rounds} rounds in a row")
        number = self.next_round
        executions = [self._make(call, number) for call in calls]
        db.session.commit()
        self.rounds.append({"type": ROUND_PART, "round": number, "text": text,
                            "calls": [{"id": call.id, "name": call.name, "arguments": call.arguments,
                                       "execution_id": str(execution.id)}
                                      for call, execution in zip(calls, executions)]})
        for execution in executions:
            self._publish(events.TOOL_CALL, execution)
            if execution.status == ExecutionStatus.PENDING_APPROVAL:
                self._publish(events.TOOL_APPROVAL_REQUIRED, execution)
            elif execution.status in EXECUTION_DONE:
                self._finished(execution)
        return self._go_on(self.rounds[-1], executions, usage)

    def _make(self, call: ToolCall, number: int) -> ToolExecution:
        tool = self.tools.get(call.name)
        execution = ToolExecution(
            message_id=self.message_id, user_id=self.user_id, tool=call.name[:100], call_id=call.id[:100],
            arguments=call.arguments, risk=tool.risk if tool else "low", round=number)
        now = utcnow()
        if tool is None:
            self._fail(execution, f"there is no tool named {call.name!r}", now)
        else:
            try:
                tool.validate(call.arguments)
                self._decide(execution, tool, now)
            except ToolArgumentsInvalid as error:
                self._fail(execution, f"invalid arguments: {error}", now)
        db.session.add(execution)
        db.session.flush()
        return execution

    def _decide(self, execution: ToolExecution, tool: Tool, now: Any) -> None:
        from bestchat.services.tools import runnable  # noqa: PLC0415 - a service above this one

        if not runnable(tool):
            self._fail(execution, f"this server has no sandbox to run {tool.risk}-risk tools", now)
            return
        decision = tool_rules.decision_for(tool, self._choices())
        if decision == Decision.ALWAYS:
            execution.status, execution.decided_by = ExecutionStatus.APPROVED.value, DecidedBy.RULE.value
        elif decision == Decision.NEVER:
            execution.status, execution.decided_by = ExecutionStatus.DENIED.value, DecidedBy.RULE.value
            execution.error, execution.finished_at = "denied by your standing choice for this tool", now
        else:
            execution.status = ExecutionStatus.PENDING_APPROVAL.value
            execution.expires_at = now + timedelta(seconds=float(self.app.config["TOOL_APPROVAL_TIMEOUT"]))

    def _choices(self) -> tuple[dict[str, str], dict[str, str]]:
        if self._standing is None:
            self._standing = tool_rules.standing_choices(self.user_id)
        return self._standing

    @staticmethod
    def _fail(execution: ToolExecution, error: str, now: Any) -> None:
        execution.status, execution.error, execution.finished_at = ExecutionStatus.FAILED.value, error, now

    # ---- a paused round, resumed --------------------------------------------------------

    def resume(self, usage: RoundUsage) -> list[dict[str, Any]] | Paused:
        """The messages of every round made before the pause, the last one's calls decided
        and run; or :class:`Paused` again while one still waits."""
        ids = [uuid.UUID(call["execution_id"]) for part in self.rounds for call in part["calls"]]
        rows = {str(e.id): e for e in db.session.scalars(select(ToolExecution).where(ToolExecution.id.in_(ids)))}
        messages: list[dict[str, Any]] = []
        for part in self.rounds[:-1]:
            messages += self._messages(part, [rows[c["execution_id"]] for c in part["calls"]])
        last = self.rounds[-1]
        executions = [rows[call["execution_id"]] for call in last["calls"]]
        for execution in executions:
            if execution.status in EXECUTION_DONE:
                self._finished(execution, audit_it=execution.decided_by == DecidedBy.USER.value
                               and execution.status == ExecutionStatus.DENIED)
        outcome = self._go_on(last, executions, usage)
        return outcome if isinstance(outcome, Paused) else messages + outcome

    # ---- shared ---------------------------------------------------------------------------

    def _go_on(self, part: dict[str, Any], executions: list[ToolExecution],
               usage: RoundUsage) -> list[dict[str, Any]] | Paused:
        """Run the round's approved calls; its messages, or :class:`Paused`."""
        for execution in executions:
            if execution.status == ExecutionStatus.APPROVED:
                usage.tool_ms += self._run(execution)
        if any(e.status == ExecutionStatus.PENDING_APPROVAL for e in executions):
            return Paused(self.all_parts())
        return self._messages(part, executions)

    def _run(self, execution: ToolExecution) -> int:
        from bestchat.tools.sandbox import run_tool  # noqa: PLC0415 - only a generation runs tools

        tool = self.tools.get(execution.tool)
        if tool is None:  # switched off or uninstalled while the call waited
            self._fail(execution, f"the tool {execution.tool!r} is no longer available", utcnow())
            db.session.commit()
            self._finished(execution)
            return 0
        execution.status, execution.started_at = ExecutionStatus.RUNNING.value, utcnow()
        db.session.commit()
        self._publish(events.TOOL_CALL, execution)
        outcome = run_tool(tool, execution.arguments, config=self.app.config,  # never raises
                           context=tool_rules.run_context(self.app.config, tool))
        status = {"succeeded": ExecutionStatus.SUCCEEDED, "timed_out": ExecutionStatus.TIMED_OUT}.get(
            outcome.status, ExecutionStatus.FAILED)
        result, error_text, elapsed = outcome.result, outcome.error, outcome.duration_ms
        execution.status, execution.finished_at, execution.duration_ms = status.value, utcnow(), elapsed
        execution.result = result if status == ExecutionStatus.SUCCEEDED else None
        execution.error = error_text if status != ExecutionStatus.SUCCEEDED else None
        db.session.commit()
        self._finished(execution)
        return elapsed

    def _finished(self, execution: ToolExecution, *, audit_it: bool = True) -> None:
        """Publish ``tool.result`` and audit the call."""
        self._publish(events.TOOL_RESULT, execution)
        if audit_it:
            digest = hashlib.sha256(json.dumps(execution.arguments, sort_keys=True).encode()).hexdigest()
            audit.record("tool.run", execution.user_id, "tool_execution", execution.id, tool=execution.tool,
                         arguments_sha256=digest, decided_by=execution.decided_by,
                         approver_id=str(execution.approver_id) if execution.approver_id else None,
                         status=execution.status, duration_ms=execution.duration_ms)
            db.session.commit()

    def _publish(self, kind: str, execution: ToolExecution) -> None:
        body = tool_execution_json(execution)
        conversation_id = self.conversation_id
        self.emit(lambda seq: events.tool(kind, body, conversation_id=conversation_id, seq=seq))

    @staticmethod
    def _messages(part: dict[str, Any], executions: list[ToolExecution]) -> list[dict[str, Any]]:
        """The round as the model sees it: its call message, then one ``tool`` message per call."""
        calls = [{"id": call["id"], "type": "function",
                  "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}
                 for call in part["calls"]]
        messages: list[dict[str, Any]] = [{"role": "assistant", "content": part["text"] or None, "tool_calls": calls}]
        for call, execution in zip(part["calls"], executions):
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result_text(execution)})
        return messages


def result_text(execution: ToolExecution) -> str:
    """What the model is told of a finished call: its result, or why there is none."""
    if execution.status == ExecutionStatus.SUCCEEDED:
        value = execution.result
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    elif execution.status == ExecutionStatus.DENIED:
        text = json.dumps({"error": execution.error if execution.decided_by == DecidedBy.RULE.value else DENIED_TEXT})
    else:
        text = json.dumps({"error": execution.error or execution.status})
    return text[:RESULT_MAX_CHARS]


def close_open_calls(message_id: uuid.UUID) -> None:
    """The answer ended (cancelled, failed): calls still waiting or running never finish."""
    now = utcnow()
    db.session.execute(
        update(ToolExecution)
        .where(ToolExecution.message_id == message_id,
               ToolExecution.status.in_([ExecutionStatus.PENDING_APPROVAL.value, ExecutionStatus.APPROVED.value,
                                         ExecutionStatus.RUNNING.value]))
        .values(status=ExecutionStatus.FAILED.value, error="the answer ended before the call finished",
                expires_at=None, finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False))
