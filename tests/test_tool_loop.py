"""The tool-call loop end to end, with jobs in-process on both backends: the demo model asks for
tools, they run in the sandbox, the results go back and the answer streams; approvals pause the
answer (no job held) until a decision or the timeout; every call is a row, an event in the
message's stream, an audit entry and tool time in the round's usage."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from bestchat import plugins
from bestchat.errors import Conflict, NotFound
from bestchat.extensions import db
from bestchat.hookspecs import hookimpl
from bestchat.models import AuditLog, AutoApprovalSetting, ToolExecution, UsageLog
from bestchat.reaper import reap
from bestchat.services import tools as tool_service
from bestchat.tools.sandbox import isolation
from tests import loop_tools
from tests.chat_fakes import jobs, wait_for  # noqa: F401
from tests.test_messages import API, new_conversation, row, send, sse, stream_events


class LoopTools:
    @hookimpl
    def register_tools(self, register):
        register(loop_tools.add)
        register(loop_tools.shout)


@pytest.fixture
def app_config():
    return {"JOBS_IN_PROCESS": True, "TOOL_APPROVAL_TIMEOUT": 600}


@pytest.fixture
def tools(app, jobs):
    plugins.register_plugin(LoopTools(), "test-loop-tools")
    try:
        yield
    finally:
        plugins.unregister_plugin("test-loop-tools")


needs_sandbox = pytest.mark.skipif(not isolation({"TOOL_SANDBOX": "auto", "TOOL_BWRAP": "bwrap"}).available,
                                   reason="bubblewrap is not usable here (CI installs it)")


def finished(app, message_id, statuses=("complete", "failed", "cancelled")):
    return wait_for(lambda: row(app, message_id).status in statuses and row(app, message_id))


def executions(app, message_id) -> list[ToolExecution]:
    with app.app_context():
        rows = list(db.session.scalars(select(ToolExecution).where(ToolExecution.message_id == uuid.UUID(message_id))
                                       .order_by(ToolExecution.created_at)))
        db.session.expunge_all()
        return rows


def user_id(app, email="alice@example.com"):
    from bestchat.models import User

    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def test_a_low_risk_tool_runs_and_its_result_reaches_the_answer(app, client, user, tools):
    conversation = new_conversation(client, model="demo/demo")
    answer = send(client, conversation, '[[add {"a": 2, "b": 40}]]')["assistant_message"]["id"]
    message = finished(app, answer)
    assert message.status == "complete"
    assert message.content == "Calling add.Tool results: add: 42"
    [execution] = executions(app, answer)
    assert (execution.tool, execution.status, execution.result, execution.decided_by) == ("add", "succeeded", 42, "rule")
    assert execution.duration_ms is not None and execution.arguments == {"a": 2, "b": 40}
    kinds = [(e["type"], e.get("execution", {}).get("status")) for e in stream_events(app, answer)]
    assert kinds == [("chunk", None), ("tool.call", "approved"), ("tool.call", "running"),
                     ("tool.result", "succeeded"), ("chunk", None), ("message.completed", None)]
    tool_events = [e for e in stream_events(app, answer) if e["type"].startswith("tool.")]
    assert all(e["seq"] == 1 and e["conversation_id"] == conversation for e in tool_events)
    # SSE serves the same events; a replay after the first chunk still holds the tool events,
    # in order, then the rest.
    assert [frame[2]["type"] for frame in sse(client, answer)] == [kind for kind, _status in kinds]
    assert [e["type"] for e in stream_events(app, answer, after=1)] == [
        "tool.call", "tool.call", "tool.result", "chunk", "message.completed"]
    with app.app_context():
        usage = list(db.session.scalars(select(UsageLog).where(UsageLog.message_id == uuid.UUID(answer))
                                        .order_by(UsageLog.round)))
        assert [u.round for u in usage] == [0, 1] and usage[0].tool_ms >= 0
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "tool.run"))
        assert audit.details["tool"] == "add" and audit.details["status"] == "succeeded"
        assert len(audit.details["arguments_sha256"]) == 64 and "arguments" not in audit.details


def test_invalid_arguments_and_unknown_tools_go_back_to_the_model(app, client, user, tools):
    conversation = new_conversation(client, model="demo/demo")
    answer = send(client, conversation, '[[add {"a": "two"}]]')["assistant_message"]["id"]
    message = finished(app, answer)
    assert message.status == "complete" and "invalid arguments" in message.content
    [execution] = executions(app, answer)
    assert execution.status == "failed" and execution.error.startswith("invalid arguments")


def test_a_switched_off_tool_is_not_offered(app, client, user, tools):
    conversation = new_conversation(client, model="demo/demo")
    response = client.patch(f"{API}/conversations/{conversation}", {"disabled_tools": ["add"]})
    assert response.status_code == 200 and response.get_json()["disabled_tools"] == ["add"]
    assert client.patch(f"{API}/conversations/{conversation}", {"disabled_tools": ["nope"]}).status_code == 400
    answer = send(client, conversation, '[[add {"a": 1, "b": 1}]]')["assistant_message"]["id"]
    message = finished(app, answer)
    assert message.status == "complete" and "Tool results" not in message.content
    assert executions(app, answer) == []


@needs_sandbox
def test_a_medium_tool_waits_for_approval_without_a_job_then_runs(app, client, user, tools):
    conversation = new_conversation(client, model="demo/demo")
    answer = send(client, conversation, '[[shout {"text": "hey"}]]')["assistant_message"]["id"]
    wait_for(lambda: row(app, answer).status == "waiting")
    [execution] = executions(app, answer)
    assert execution.status == "pending_approval" and execution.expires_at is not None
    assert [e["type"] for e in stream_events(app, answer)] == ["chunk", "tool.call", "tool.approval_required"]
    assert client.post(f"{API}/conversations/{conversation}/messages", {"content": "next"}).status_code == 409
    with app.app_context():
        stranger = uuid.uuid4()
        with pytest.raises(NotFound):
            tool_service.decide(stranger, execution.id, "approve")
        tool_service.decide(user_id(app), execution.id, "approve", remember=True)
        with pytest.raises(Conflict):
            tool_service.decide(user_id(app), execution.id, "deny")
        setting = db.session.scalar(select(AutoApprovalSetting))
        assert (setting.tool, setting.decision) == ("shout", "always")
    message = finished(app, answer)
    assert message.status == "complete" and message.content.endswith("Tool results: shout: HEY")
    [execution] = executions(app, answer)
    assert execution.status == "succeeded" and execution.approver_id == user_id(app)
    # Remembered: the next call of the tool runs without asking.
    second = send(client, conversation, '[[shout {"text": "again"}]]')["assistant_message"]["id"]
    assert finished(app, second).content.endswith("AGAIN")


def test_a_denied_call_tells_the_model_and_the_answer_completes(app, client, user, tools):
    conversation = new_conversation(client, model="demo/demo")
    answer = send(client, conversation, '[[shout {"text": "hey"}]]')["assistant_message"]["id"]
    wait_for(lambda: row(app, answer).status == "waiting")
    [execution] = executions(app, answer)
    with app.app_context():
        tool_service.decide(user_id(app), execution.id, "deny")
    message = finished(app, answer)
    assert message.status == "complete" and "denied" in message.content
    assert executions(app, answer)[0].status == "denied"
    assert stream_events(app, answer)[-2]["type"] == "chunk"
    assert "tool.result" in [e["type"] for e in stream_events(app, answer)]


def test_no_decision_in_time_counts_as_denied(app, client, user, tools):
    app.config["TOOL_APPROVAL_TIMEOUT"] = 0
    conversation = new_conversation(client, model="demo/demo")
    answer = send(client, conversation, '[[shout {"text": "hey"}]]')["assistant_message"]["id"]
    wait_for(lambda: row(app, answer).status == "waiting")
    with app.app_context():
        reap(app)
    message = finished(app, answer)
    assert message.status == "complete" and "no decision in time" in message.content
    assert executions(app, answer)[0].status == "timed_out"
    assert executions(app, answer)[0].decided_by == "timeout"


def test_cancelling_a_waiting_answer_ends_it_and_its_calls(app, client, user, tools):
    conversation = new_conversation(client, model="demo/demo")
    answer = send(client, conversation, '[[shout {"text": "hey"}]]')["assistant_message"]["id"]
    wait_for(lambda: row(app, answer).status == "waiting")
    assert client.post(f"{API}/messages/{answer}/cancel").status_code == 200
    assert row(app, answer).status == "cancelled"
    assert executions(app, answer)[0].status == "failed"


def test_the_round_limit_ends_the_answer_with_a_clear_status(app, client, user, tools):
    app.config["TOOLS_MAX_ROUNDS"] = 0
    conversation = new_conversation(client, model="demo/demo")
    answer = send(client, conversation, '[[add {"a": 1, "b": 1}]]')["assistant_message"]["id"]
    message = finished(app, answer)
    assert (message.status, message.error_code) == ("failed", "tool_rounds")
    assert "rounds" in message.error
