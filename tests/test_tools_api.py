"""The tools' adapters: ``GET /api/v1/tools``, decisions on calls over REST
(``/tool-executions/<id>/approve|deny``) and the WebSocket (``approve`` frame), the standing
approval choices (``/tool-approvals``) and each answer's calls in its conversation's message
list. The demo model calls the tools of ``tests/web_tools.py`` written as ``[[name {json}]]``.
"""

from __future__ import annotations

import json
import uuid

import pytest

from bestchat.testing.client import assert_error
from bestchat.testing.plugins import plugin_registered
from tests.chat_fakes import app_config, jobs, wait_for  # noqa: F401 - fixtures
from tests.socket_client import SocketClient
from tests.web_tools import WebToolsPlugin

ADD = '[[add {"a": 2, "b": 40}]]'
SHOUT = '[[shout {"text": "hi"}]]'


@pytest.fixture
def tools(app):
    """The test tools installed for one test."""
    with plugin_registered(WebToolsPlugin(), "web-tools") as record:
        assert record["status"] == "loaded", record
        yield


@pytest.fixture
def stranger(client):
    other = client.new()
    other.user = other.signup("mallory@example.com", "correct horse battery")
    return other


# ---- helpers --------------------------------------------------------------------------------

def new_conversation(client) -> str:
    response = client.post("/api/v1/conversations", json={"model": "demo/demo"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def ask(client, conversation_id: str, content: str) -> str:
    """Send ``content``; the id of its answer."""
    response = client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"content": content})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["assistant_message"]["id"]


def listed(client, conversation_id: str, answer_id: str) -> dict:
    """The answer as the conversation's message list shows it."""
    response = client.get(f"/api/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.get_json()
    return next(m for m in response.get_json()["messages"] if m["id"] == answer_id)


def status_of(client, answer_id: str) -> str:
    return client.get(f"/api/v1/messages/{answer_id}").get_json()["status"]


def wait_status(client, answer_id: str, *statuses: str) -> str:
    return wait_for(lambda: (status := status_of(client, answer_id)) in statuses and status)


def waiting_calls(client, conversation_id: str, content: str) -> tuple[str, list[dict]]:
    """Ask ``content`` and wait until the answer waits for a decision; (answer id, its calls)."""
    answer = ask(client, conversation_id, content)
    assert wait_status(client, answer, "waiting", "complete", "failed") == "waiting"
    return answer, listed(client, conversation_id, answer)["tool_executions"]


def pending_call(client, content: str = SHOUT) -> tuple[str, str, dict]:
    """(conversation id, answer id, the call waiting for approval)."""
    conversation = new_conversation(client)
    answer, calls = waiting_calls(client, conversation, content)
    pending = [call for call in calls if call["status"] == "pending_approval"]
    assert len(pending) == 1, calls
    return conversation, answer, pending[0]


def settings(client) -> list[dict]:
    response = client.get("/api/v1/tool-approvals")
    assert response.status_code == 200
    return response.get_json()["settings"]


# ---- GET /tools -----------------------------------------------------------------------------

def test_tools_lists_each_tool_with_its_risk_and_approval_and_the_sandbox(client, user, tools):
    response = client.get("/api/v1/tools")
    assert response.status_code == 200
    body = response.get_json()
    by_name = {tool["name"]: tool for tool in body["tools"]}
    assert {"add", "shout", "wipe", "fetch_local"} <= set(by_name)
    assert by_name["add"]["risk"] == "low" and by_name["add"]["approval"] == "always"
    assert by_name["add"]["runnable"] is True and by_name["add"]["network"] is False
    assert by_name["add"]["parameters"]["required"] == ["a", "b"]
    assert by_name["add"]["description"] == "Add two whole numbers."
    assert by_name["shout"]["risk"] == "medium" and by_name["shout"]["approval"] == "ask"
    assert by_name["wipe"]["risk"] == "high" and by_name["wipe"]["approval"] == "ask"
    assert by_name["fetch_local"]["network"] is True and by_name["fetch_local"]["timeout"] == 10
    assert by_name["shout"]["runnable"] == body["sandbox"]["available"]
    assert set(body["sandbox"]) == {"available", "method", "detail"}
    assert body["sandbox"]["method"] in ("bwrap", "none")


@pytest.mark.parametrize("app_config", [{"JOBS_IN_PROCESS": True, "TOOLS_DISABLED": ["wipe"]}])
def test_tools_leaves_out_the_tools_the_operator_disabled(client, user, tools):
    names = [tool["name"] for tool in client.get("/api/v1/tools").get_json()["tools"]]
    assert "wipe" not in names and "add" in names


def test_tools_needs_a_user(client, tools):
    assert_error(client.get("/api/v1/tools"), 401)


# ---- decisions over REST --------------------------------------------------------------------

def test_approving_runs_the_call_and_the_answer_goes_on(client, user, tools, jobs):
    conversation, answer, call = pending_call(client)
    assert call["tool"] == "shout" and call["risk"] == "medium" and call["arguments"] == {"text": "hi"}

    response = client.post(f"/api/v1/tool-executions/{call['id']}/approve")
    assert response.status_code == 200, response.get_json()
    execution = response.get_json()["execution"]
    assert execution["id"] == call["id"] and execution["status"] == "approved"
    assert execution["approver_id"] == user["id"]

    assert wait_status(client, answer, "complete", "failed") == "complete"
    [done] = listed(client, conversation, answer)["tool_executions"]
    if client.get("/api/v1/tools").get_json()["sandbox"]["available"]:
        assert done["status"] == "succeeded" and done["result"] == "HI"
        assert "shout" in client.get(f"/api/v1/messages/{answer}").get_json()["content"]
    else:  # a medium-risk tool is refused where there is no sandbox
        assert done["status"] == "failed" and done["error"]


def test_denying_refuses_the_call_and_the_answer_goes_on(client, user, tools, jobs):
    conversation, answer, call = pending_call(client)
    response = client.post(f"/api/v1/tool-executions/{call['id']}/deny", json={})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["execution"]["status"] == "denied"
    assert wait_status(client, answer, "complete", "failed") == "complete"
    [done] = listed(client, conversation, answer)["tool_executions"]
    assert done["status"] == "denied" and done["result"] is None
    assert settings(client) == []  # no "remember": nothing stored


def test_a_decided_call_is_a_conflict(client, user, tools, jobs):
    _conversation, answer, call = pending_call(client)
    assert client.post(f"/api/v1/tool-executions/{call['id']}/deny").status_code == 200
    for decision in ("approve", "deny"):
        assert_error(client.post(f"/api/v1/tool-executions/{call['id']}/{decision}"), 409, "not_pending")
    wait_status(client, answer, "complete", "failed")


def test_another_users_call_and_unknown_ids_are_not_found(client, user, stranger, tools, jobs):
    _conversation, answer, call = pending_call(client)
    for decision in ("approve", "deny"):
        assert_error(stranger.post(f"/api/v1/tool-executions/{call['id']}/{decision}",
                                   json={"remember": True}), 404, "not_found")
        assert_error(client.post(f"/api/v1/tool-executions/{uuid.uuid4()}/{decision}"), 404, "not_found")
        assert_error(client.post(f"/api/v1/tool-executions/not-an-id/{decision}"), 404, "not_found")
    assert settings(stranger) == []
    assert status_of(client, answer) == "waiting"  # nothing was decided
    assert client.post(f"/api/v1/tool-executions/{call['id']}/approve").status_code == 200
    wait_status(client, answer, "complete", "failed")


def test_a_bad_decision_body_is_refused_and_changes_nothing(client, user, tools, jobs):
    conversation, answer, call = pending_call(client)
    path = f"/api/v1/tool-executions/{call['id']}/approve"
    assert_error(client.post(path, json={"remember": "yes"}), 400, "invalid_field")
    assert_error(client.post(path, json=[True]), 400, "invalid_json")
    assert_error(client.post(path, data="remember", content_type="text/plain"), 415)
    assert_error(client.post(path, data="{", content_type="application/json"), 400, "invalid_json")
    assert_error(client.get(path), 405)
    assert status_of(client, answer) == "waiting"
    [still] = listed(client, conversation, answer)["tool_executions"]
    assert still["status"] == "pending_approval"
    assert settings(client) == []
    assert client.post(path, json={"remember": False}).status_code == 200
    wait_status(client, answer, "complete", "failed")


@pytest.mark.parametrize(("decision", "stored"), [("approve", "always"), ("deny", "never")])
def test_remember_stores_the_choice_for_the_tool(client, user, tools, jobs, decision, stored):
    _conversation, answer, call = pending_call(client)
    response = client.post(f"/api/v1/tool-executions/{call['id']}/{decision}", json={"remember": True})
    assert response.status_code == 200, response.get_json()
    [setting] = settings(client)
    assert (setting["tool"], setting["risk_level"], setting["decision"]) == ("shout", None, stored)
    wait_status(client, answer, "complete", "failed")
    shout = next(t for t in client.get("/api/v1/tools").get_json()["tools"] if t["name"] == "shout")
    assert shout["approval"] == stored
    # The next call of the tool is decided by the stored choice: it does not wait.
    conversation = new_conversation(client)
    assert wait_status(client, ask(client, conversation, SHOUT), "complete", "failed", "waiting") != "waiting"


# ---- the message list -----------------------------------------------------------------------

def test_the_message_list_gives_each_answer_its_calls_in_order(client, user, tools, jobs):
    conversation = new_conversation(client)
    # A low-risk tool runs at once; asking for it by name makes it wait, like the medium one.
    assert client.put("/api/v1/tool-approvals", json={"tool": "add", "decision": "ask"}).status_code == 200
    answer, calls = waiting_calls(client, conversation, f"{ADD} then {SHOUT}")
    assert [(c["tool"], c["status"]) for c in calls] == [("add", "pending_approval"), ("shout", "pending_approval")]
    assert all(c["message_id"] == answer for c in calls)
    first = client.post(f"/api/v1/tool-executions/{calls[0]['id']}/approve")
    assert first.status_code == 200
    assert status_of(client, answer) == "waiting"  # the other call still waits
    assert client.post(f"/api/v1/tool-executions/{calls[1]['id']}/deny").status_code == 200
    assert wait_status(client, answer, "complete", "failed") == "complete"

    page = client.get(f"/api/v1/conversations/{conversation}/messages").get_json()["messages"]
    question = next(m for m in page if m["role"] == "user")
    assert "tool_executions" not in question
    done = next(m for m in page if m["id"] == answer)["tool_executions"]
    assert [(c["id"], c["tool"], c["status"]) for c in done] == [
        (calls[0]["id"], "add", "succeeded"), (calls[1]["id"], "shout", "denied")]
    assert done[0]["result"] == 42 and done[0]["duration_ms"] is not None
    assert "Tool results" in client.get(f"/api/v1/messages/{answer}").get_json()["content"]


def test_an_answer_without_calls_lists_none(client, user, tools, jobs):
    conversation = new_conversation(client)
    answer = ask(client, conversation, "hello")
    wait_status(client, answer, "complete")
    assert listed(client, conversation, answer)["tool_executions"] == []


# ---- standing choices -----------------------------------------------------------------------

def test_tool_approvals_are_set_replaced_listed_and_deleted(client, user, tools):
    assert settings(client) == []
    response = client.put("/api/v1/tool-approvals", json={"risk_level": "medium", "decision": "always"})
    assert response.status_code == 200, response.get_json()
    medium = response.get_json()
    assert (medium["tool"], medium["risk_level"], medium["decision"]) == (None, "medium", "always")
    by_tool = client.put("/api/v1/tool-approvals", json={"tool": "add", "decision": "never"}).get_json()
    assert (by_tool["tool"], by_tool["risk_level"], by_tool["decision"]) == ("add", None, "never")

    again = client.put("/api/v1/tool-approvals", json={"risk_level": "medium", "decision": "ask"}).get_json()
    assert again["id"] == medium["id"] and again["decision"] == "ask"
    assert sorted((s["id"], s["decision"]) for s in settings(client)) == sorted(
        [(medium["id"], "ask"), (by_tool["id"], "never")])

    approvals = {t["name"]: t["approval"] for t in client.get("/api/v1/tools").get_json()["tools"]}
    assert approvals["add"] == "never" and approvals["shout"] == "ask"

    response = client.delete(f"/api/v1/tool-approvals/{by_tool['id']}")
    assert response.status_code == 204 and response.data == b""
    assert [s["id"] for s in settings(client)] == [medium["id"]]
    assert_error(client.delete(f"/api/v1/tool-approvals/{by_tool['id']}"), 404, "not_found")
    assert {t["name"]: t["approval"] for t in client.get("/api/v1/tools").get_json()["tools"]}["add"] == "always"


def test_always_for_high_risk_stays_ask_under_the_default_ceiling(client, user, tools):
    assert client.put("/api/v1/tool-approvals", json={"risk_level": "high", "decision": "always"}).status_code == 200
    wipe = next(t for t in client.get("/api/v1/tools").get_json()["tools"] if t["name"] == "wipe")
    assert wipe["approval"] == "ask"


@pytest.mark.parametrize("body", [
    {"decision": "always"},  # neither a tool nor a risk level
    {"tool": "add", "risk_level": "low", "decision": "always"},  # both
    {"tool": "no_such_tool", "decision": "always"},
    {"risk_level": "extreme", "decision": "always"},
    {"risk_level": "low", "decision": "sometimes"},
    {"risk_level": "low"},
    {"risk_level": "low", "decision": 1},
    {"tool": ["add"], "decision": "ask"},
    {"tool": "x" * 101, "decision": "ask"},
])
def test_a_bad_tool_approval_is_refused_and_nothing_is_stored(client, user, tools, body):
    error = assert_error(client.put("/api/v1/tool-approvals", json=body), 400)
    assert error["code"] in ("invalid_field", "missing_field", "unknown_tool"), error
    assert settings(client) == []


def test_tool_approvals_bodies_and_ids(client, user, stranger, tools):
    assert_error(client.put("/api/v1/tool-approvals", data="x", content_type="text/plain"), 415)
    assert_error(client.put("/api/v1/tool-approvals", json=["always"]), 400, "invalid_json")
    mine = client.put("/api/v1/tool-approvals", json={"risk_level": "low", "decision": "ask"}).get_json()
    assert_error(stranger.delete(f"/api/v1/tool-approvals/{mine['id']}"), 404, "not_found")
    assert settings(stranger) == []
    assert_error(client.delete(f"/api/v1/tool-approvals/{uuid.uuid4()}"), 404, "not_found")
    assert_error(client.delete("/api/v1/tool-approvals/nope"), 404, "not_found")
    assert [s["id"] for s in settings(client)] == [mine["id"]]
    assert_error(stranger.__class__(client.app).get("/api/v1/tool-approvals"), 401)


# ---- conversations' switches ----------------------------------------------------------------

def test_a_conversation_switches_tools_off_and_its_model_no_longer_calls_them(client, user, tools, jobs):
    conversation = new_conversation(client)
    response = client.patch(f"/api/v1/conversations/{conversation}", json={"disabled_tools": ["shout"]})
    assert response.status_code == 200 and response.get_json()["disabled_tools"] == ["shout"]
    assert_error(client.patch(f"/api/v1/conversations/{conversation}", json={"disabled_tools": ["nope"]}), 400)
    assert client.get(f"/api/v1/conversations/{conversation}").get_json()["disabled_tools"] == ["shout"]
    answer = ask(client, conversation, SHOUT)
    assert wait_status(client, answer, "complete", "failed", "waiting") == "complete"
    assert listed(client, conversation, answer)["tool_executions"] == []


# ---- decisions over the WebSocket -----------------------------------------------------------

def _frames_until(socket, predicate) -> list[dict]:
    frames = []
    while not frames or not predicate(frames[-1]):
        frames.append(socket.receive())
    return frames


def test_the_approve_frame_decides_and_the_events_follow(app, client, user, tools, jobs):
    with SocketClient(app, user["id"]) as socket:  # (from the start: the bus is the socket's)
        conversation, answer, call = pending_call(client)
        socket.send({"type": "subscribe", "conversation_id": conversation})
        socket.send({"type": "approve", "execution_id": call["id"], "decision": "approve", "remember": True})
        frames = _frames_until(socket, lambda f: f["type"] in ("message.completed", "message.failed", "error"))
    assert not [f for f in frames if f["type"] == "error"], frames
    results = [f for f in frames if f["type"] == "tool.result"]
    assert results and results[-1]["execution"]["id"] == call["id"], frames
    assert results[-1]["message_id"] == answer and results[-1]["conversation_id"] == conversation
    assert frames[-1]["type"] == "message.completed"
    assert [(s["tool"], s["decision"]) for s in settings(client)] == [("shout", "always")]


def test_the_approve_frame_refuses_bad_unknown_and_other_users_ids(app, client, user, stranger, tools, jobs):
    _conversation, answer, call = pending_call(client)
    with SocketClient(app, stranger.user["id"]) as socket:
        error = socket.ask({"type": "approve", "execution_id": call["id"], "decision": "approve"})
        assert (error["type"], error["code"]) == ("error", "not_found")
    with SocketClient(app, user["id"]) as socket:
        for frame, code in (
            ({"execution_id": str(uuid.uuid4()), "decision": "approve"}, "not_found"),
            ({"execution_id": "nope", "decision": "deny"}, "not_found"),
            ({"execution_id": call["id"], "decision": "maybe"}, "invalid_field"),
            ({"execution_id": call["id"], "decision": "approve", "remember": "yes"}, "invalid_field"),
            ({"decision": "approve"}, "missing_field"),
            ({"execution_id": call["id"]}, "missing_field"),
            ({"execution_id": 5, "decision": "approve"}, "invalid_field"),
        ):
            reply = socket.ask(json.dumps({"type": "approve", **frame}))
            assert (reply["type"], reply["code"]) == ("error", code), (frame, reply)
        assert socket.ask({"type": "ping"}) == {"type": "pong"}  # the socket stays usable
    assert status_of(client, answer) == "waiting"
    assert client.post(f"/api/v1/tool-executions/{call['id']}/deny").status_code == 200
    with SocketClient(app, user["id"]) as socket:
        reply = socket.ask({"type": "approve", "execution_id": call["id"], "decision": "approve"})
        assert (reply["type"], reply["code"]) == ("error", "not_pending")
    wait_status(client, answer, "complete", "failed")


def test_stopping_a_waiting_answer_ends_it_and_its_call_can_no_longer_be_decided(client, user, tools, jobs):
    _conversation, answer, call = pending_call(client)
    response = client.post(f"/api/v1/messages/{answer}/cancel")
    assert response.status_code == 200, response.get_json()
    assert wait_status(client, answer, "cancelled", "complete", "failed") == "cancelled"
    assert_error(client.post(f"/api/v1/tool-executions/{call['id']}/approve"), 409, "not_pending")
    assert status_of(client, answer) == "cancelled"
