"""Groups and per-group model and tool access: the rules (no group, one, two in union,
``<provider>/*``, admins, the user's own connections), where they hold (``/api/v1/models``,
REST sends, regenerate and edit, the WebSocket, ``/v1``, the worker's target resolution, the
tools offered and listed), and the caches that keep them cheap staying right across changes."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from bestchat import plugins
from bestchat.errors import ModelNotAllowed
from bestchat.extensions import db
from bestchat.models import Group, Message, User
from bestchat.providers import registry
from bestchat.redis_client import get_redis
from bestchat.services import accounts, groups, provider_configs
from bestchat.testing.client import assert_error
from tests.chat_fakes import GatedProvider, gated, jobs, wait_for  # noqa: F401 - fixtures
from tests.fake_providers import installed
from tests.socket_client import SocketClient
from tests.test_openai_compat import live_bus  # noqa: F401 - fixture
from tests.test_messages import API, new_conversation, row, send
from tests.test_tool_loop import LoopTools

PASSWORD = "correct horse battery"


@pytest.fixture
def app_config():
    """Jobs in this process, one at a time (so a second answer waits in the queue)."""
    return {"JOBS_IN_PROCESS": True, "JOBS_CONCURRENCY": 1}

KEY = "sk-good-user-0123456789"
GLOBAL_KEY = "sk-good-global-0123456789"
# Every model with the ``keyed`` fixture: the global config's and the built-in providers'.
EVERY_MODEL = ["demo/demo", "keyed/k1", "keyed/k2", "local/tiny"]


@pytest.fixture
def keyed(app):
    """The in-process ``keyed`` provider (models k1, k2) with a global config of it."""
    with app.app_context(), installed():
        root = accounts.register("root@example.com", PASSWORD, role="admin")
        provider_configs.create_config(root, {"scope": "global", "provider": "keyed", "api_key": GLOBAL_KEY})
        yield


def the_user(app, email="alice@example.com") -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        db.session.expunge(user)
        return user


def root(app) -> User:
    with app.app_context():
        found = db.session.scalar(select(User).where(User.email == "root@example.com"))
        if found is None:
            found = accounts.register("root@example.com", PASSWORD, role="admin")
        db.session.expunge(found)
        return found


def make_group(app, name, members=(), models=None, tools=None) -> uuid.UUID:
    with app.app_context():
        actor = db.session.merge(root(app))
        group = groups.create_group(actor, name=name, models=models, tools=tools)
        for email in members:
            groups.add_member(actor, group, email)
        return group.id


def set_lists(app, group_id, models=None, tools=None) -> None:
    with app.app_context():
        group = groups.get_group(group_id)
        groups.update_group(db.session.merge(root(app)), group, name=group.name, models=models, tools=tools)


def model_ids(client) -> list[str]:
    response = client.get(f"{API}/models")
    assert response.status_code == 200
    return [model["id"] for model in response.get_json()["models"]]


def message_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Message))


# ---- the rules ----------------------------------------------------------------------------

def test_a_user_in_no_group_uses_every_model(app, client, user, keyed):
    make_group(app, "others", models=["keyed/k1"])  # a restricting group the user is not in
    assert model_ids(client) == EVERY_MODEL


def test_one_group_allows_only_its_models(app, client, user, keyed):
    make_group(app, "staff", ["alice@example.com"], models=["keyed/k1"])
    assert model_ids(client) == ["keyed/k1"]


def test_two_groups_allow_the_union_and_a_group_of_all_models_allows_all(app, client, user, keyed):
    make_group(app, "a", ["alice@example.com"], models=["keyed/k2"])
    make_group(app, "b", ["alice@example.com"], models=["demo/demo"])
    assert model_ids(client) == ["demo/demo", "keyed/k2"]
    make_group(app, "everything", ["alice@example.com"], models=None)
    assert model_ids(client) == EVERY_MODEL


def test_a_provider_wildcard_allows_every_model_of_the_provider(app, client, user, keyed):
    make_group(app, "keyed", ["alice@example.com"], models=["keyed/*"])
    assert model_ids(client) == ["keyed/k1", "keyed/k2"]


def test_admins_use_everything_whatever_their_groups(app, client, keyed, jobs):
    make_group(app, "nothing", ["root@example.com"], models=[])
    client.login("root@example.com", PASSWORD)
    assert model_ids(client) == EVERY_MODEL
    conversation = new_conversation(client)
    send(client, conversation, model="keyed/k2")


def test_the_users_own_connection_stays_usable_and_only_its_targets_remain(app, client, user, keyed, jobs):
    alice = the_user(app)
    with app.app_context():
        own = provider_configs.create_config(db.session.merge(alice), {"provider": "keyed", "api_key": KEY,
                                                                       "enabled_models": ["k1"]})
        own_id = own.id
    make_group(app, "demo only", ["alice@example.com"], models=["demo/demo"])
    models = {m["id"]: m["source"] for m in client.get(f"{API}/models").get_json()["models"]}
    assert models == {"demo/demo": "builtin", "keyed/k1": "user"}  # not keyed/k2, nor local/tiny
    with app.app_context():
        # k1: served by alice's config and the global one; only hers is left.
        assert [t.config_id for t in registry.resolve_targets(alice.id, "keyed/k1")] == [own_id]
        with pytest.raises(ModelNotAllowed):
            registry.resolve_targets(alice.id, "keyed/k2")
    conversation = new_conversation(client)
    send(client, conversation, model="keyed/k1")
    assert_error(client.post(f"{API}/conversations/{conversation}/messages",
                             {"content": "hi", "model": "keyed/k2"}), 403, "model_not_allowed")


def test_the_worker_drops_targets_no_longer_allowed(app, user, keyed):
    """Defence in depth: a message queued before a change resolves with the configs its claim
    read, and the operator's targets of a model no longer allowed are gone."""
    alice = the_user(app)
    with app.app_context():
        configs = registry.enabled_configs(alice.id)
        assert len(registry.resolve_targets(alice.id, "keyed/k1", configs)) == 1
    make_group(app, "k2 only", ["alice@example.com"], models=["keyed/k2"])
    with app.app_context():
        with pytest.raises(ModelNotAllowed):
            registry.resolve_targets(alice.id, "keyed/k1", configs)
        assert len(registry.resolve_targets(alice.id, "keyed/k2", configs)) == 1


def test_an_answer_queued_before_a_change_fails_with_model_not_allowed(app, client, user, gated):
    busy = new_conversation(client, model="gated/g")
    first = send(client, busy)["assistant_message"]["id"]
    wait_for(lambda: row(app, first).status == "streaming")
    second = send(client, new_conversation(client, model="demo/demo"))["assistant_message"]["id"]
    assert row(app, second).status == "queued"
    make_group(app, "gated only", ["alice@example.com"], models=["gated/*"])
    GatedProvider.feed.put(None)  # the first answer ends; the queued one starts
    message = wait_for(lambda: row(app, second).status in ("complete", "failed") and row(app, second))
    assert (message.status, message.error_code) == ("failed", "model_not_allowed")
    assert row(app, first).status == "complete"


def test_bad_group_input_is_refused_and_nothing_is_stored(app, user):
    actor = root(app)
    with app.app_context():
        actor = db.session.merge(actor)
        for values, code in [({"name": " "}, "missing_field"), ({"name": "x" * 101}, "invalid_field"),
                             ({"name": "g", "models": ["no-slash"]}, "invalid_field"),
                             ({"name": "g", "models": "demo/demo"}, "invalid_field"),
                             ({"name": "g", "tools": ["bad name"]}, "invalid_field")]:
            with pytest.raises(Exception) as raised:
                groups.create_group(actor, **values)
            assert raised.value.code == code
        groups.create_group(actor, name="Staff", models=[" demo/demo ", "demo/demo"])
        with pytest.raises(Exception) as raised:
            groups.create_group(actor, name="staff")
        assert raised.value.code == "name_taken"
        assert [g.models for g in db.session.scalars(select(Group))] == [["demo/demo"]]


# ---- where the rules hold: sends ------------------------------------------------------------

def test_rest_send_regenerate_and_edit_of_a_disallowed_model_are_refused_storing_nothing(app, client, user, jobs):
    conversation = new_conversation(client, model="demo/demo")
    exchange = send(client, conversation)
    wait_for(lambda: row(app, exchange["assistant_message"]["id"]).status == "complete")
    group = make_group(app, "nothing yet", ["alice@example.com"], models=["keyed/*"])
    before = message_count(app)
    # Named in the request, inherited from the conversation, or the answer's own (regenerate).
    error = assert_error(client.post(f"{API}/conversations/{conversation}/messages",
                                     {"content": "hi", "model": "demo/demo"}), 403, "model_not_allowed")
    assert "demo/demo" in error["message"] and "groups" in error["message"]
    assert_error(client.post(f"{API}/conversations/{conversation}/messages", {"content": "hi"}),
                 403, "model_not_allowed")
    assert_error(client.post(f"{API}/messages/{exchange['assistant_message']['id']}/regenerate"),
                 403, "model_not_allowed")
    assert_error(client.patch(f"{API}/messages/{exchange['user_message']['id']}", {"content": "again"}),
                 403, "model_not_allowed")
    assert message_count(app) == before
    set_lists(app, group, models=["demo/*"])
    send(client, conversation)


def test_a_conversation_without_a_model_is_checked_against_the_default_model(app, client, user, jobs):
    conversation = new_conversation(client)
    make_group(app, "no demo", ["alice@example.com"], models=[])
    assert_error(client.post(f"{API}/conversations/{conversation}/messages", {"content": "hi"}),
                 403, "model_not_allowed")
    assert message_count(app) == 0


def test_a_websocket_send_of_a_disallowed_model_gets_an_error_frame(app, client, user):
    conversation = new_conversation(client, model="demo/demo")
    make_group(app, "none", ["alice@example.com"], models=[])
    with SocketClient(app, the_user(app).id) as socket:
        frame = socket.ask({"type": "send", "conversation_id": conversation, "content": "hi", "client_id": "c1"})
        assert frame["type"] == "error" and frame["code"] == "model_not_allowed"
        frame = socket.ask({"type": "send", "conversation_id": conversation, "content": "hi", "client_id": "c2",
                            "model": "demo/demo"})
        assert frame["code"] == "model_not_allowed"
        assert socket.ask({"type": "ping"})["type"] == "pong"  # the socket stays usable
    assert message_count(app) == 0


@pytest.fixture
def api(client, user):
    token = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    bearer = client.new()
    bearer.bearer = token
    return bearer


def test_v1_lists_and_serves_only_allowed_models(app, api, keyed):
    make_group(app, "k1", ["alice@example.com"], models=["keyed/k1"])
    assert [m["id"] for m in api.get("/v1/models").get_json()["data"]] == ["keyed/k1"]
    assert api.get("/v1/models/keyed/k1").status_code == 200
    assert api.get("/v1/models/demo/demo").status_code == 404
    response = api.post("/v1/chat/completions", {"model": "demo/demo",
                                                 "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert (error["code"], error["type"], error["param"]) == ("model_not_allowed", "permission_error", "model")
    assert message_count(app) == 0


def test_v1_serves_the_users_own_connection_and_an_admin_whatever_their_groups(app, client, api, keyed, jobs,
                                                                                live_bus):
    """``/v1`` resolves the model before storing anything, with the user's own configs and
    their groups' rule as the generation resolves it."""
    with app.app_context():
        provider_configs.create_config(db.session.merge(the_user(app)), {"provider": "keyed", "api_key": KEY,
                                                                         "enabled_models": ["k1"]})
    make_group(app, "demo only", ["alice@example.com"], models=["demo/demo"])
    make_group(app, "nothing", ["root@example.com"], models=[])
    hello = [{"role": "user", "content": "hi"}]
    response = api.post("/v1/chat/completions", {"model": "keyed/k1", "messages": hello})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["choices"][0]["message"]["content"]
    assert message_count(app) == 2
    refused = api.post("/v1/chat/completions", {"model": "keyed/k2", "messages": hello})
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "model_not_allowed")
    assert message_count(app) == 2
    admin = client.new()
    admin.login("root@example.com", PASSWORD)
    admin_api = client.new()
    admin_api.bearer = admin.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    answered = admin_api.post("/v1/chat/completions", {"model": "keyed/k2", "messages": hello})
    assert answered.status_code == 200, answered.get_json()
    assert message_count(app) == 4


# ---- the caches -----------------------------------------------------------------------------

def test_membership_and_list_changes_reach_cached_lists_at_once(app, client, user, keyed):
    assert model_ids(client) == EVERY_MODEL
    alice = the_user(app)
    redis = get_redis(app)
    if redis is not None:  # the list is cached in Redis, and so is the user's access
        assert redis.exists(f"bestchat:models:{alice.id}")
    group = make_group(app, "k1", models=["keyed/k1"])
    assert model_ids(client) == EVERY_MODEL  # not a member yet
    with app.app_context():
        groups.add_member(db.session.merge(root(app)), groups.get_group(group), "alice@example.com")
    assert model_ids(client) == ["keyed/k1"]
    if redis is not None:
        cached = json.loads(redis.get(f"bestchat:models:{alice.id}:access"))
        assert cached["access"] == {"models": ["keyed/k1"], "tools": None}
    set_lists(app, group, models=["keyed/k2", "demo/demo"])
    assert model_ids(client) == ["demo/demo", "keyed/k2"]
    with app.app_context():
        groups.remove_member(db.session.merge(root(app)), groups.get_group(group), alice.id)
    assert model_ids(client) == EVERY_MODEL
    make_group(app, "again", ["alice@example.com"], models=[])
    assert model_ids(client) == []
    with app.app_context():
        groups.delete_group(db.session.merge(root(app)), groups.get_group(
            db.session.scalar(select(Group.id).where(Group.name == "again"))))
    assert model_ids(client) == EVERY_MODEL


def test_while_no_group_restricts_a_users_lookup_reads_no_groups(app, user, monkeypatch):
    make_group(app, "open", ["alice@example.com"])  # allows everything
    alice = the_user(app)
    reads = []
    real = groups._read_access
    monkeypatch.setattr(groups, "_read_access", lambda user_id: reads.append(user_id) or real(user_id))
    with app.app_context():
        assert groups.access(alice.id, admin=False) == groups.EVERYTHING
        bob = accounts.register("bob@example.com", PASSWORD)
        assert groups.access(bob.id, admin=False) == groups.EVERYTHING
        assert groups.access(alice.id, admin=False) == groups.EVERYTHING
    assert reads == [alice.id]  # the first lookup learnt that no group restricts anything


# ---- tools ----------------------------------------------------------------------------------

@pytest.fixture
def loop_tools(app, jobs):
    plugins.register_plugin(LoopTools(), "test-loop-tools")
    try:
        yield
    finally:
        plugins.unregister_plugin("test-loop-tools")


def test_tools_are_listed_and_offered_only_when_a_group_allows_them(app, client, user, loop_tools):
    names = lambda: [tool["name"] for tool in client.get(f"{API}/tools").get_json()["tools"]]  # noqa: E731
    assert {"add", "shout"} <= set(names())
    group = make_group(app, "shouters", ["alice@example.com"], tools=["shout"])
    assert "add" not in names() and "shout" in names()
    conversation = new_conversation(client, model="demo/demo")
    answer = send(client, conversation, '[[add {"a": 1, "b": 1}]]')["assistant_message"]["id"]
    message = wait_for(lambda: row(app, answer).status in ("complete", "failed") and row(app, answer))
    assert message.status == "complete" and "Tool results" not in message.content
    set_lists(app, group, tools=["add"])
    answer = send(client, conversation, '[[add {"a": 2, "b": 40}]]')["assistant_message"]["id"]
    message = wait_for(lambda: row(app, answer).status in ("complete", "failed") and row(app, answer))
    assert message.content.endswith("Tool results: add: 42")


def test_the_default_model_is_offered_only_to_users_who_may_use_it(app, client, user):
    assert client.get("/api/v1/models").get_json()["default"] == "demo/demo"
    with app.app_context():
        boss = accounts.register("boss@example.com", "correct horse battery", role="admin")
        group = groups.create_group(boss, name="nothing", models=["openai/other"])
        groups.add_member(boss, group, "alice@example.com")
    assert client.get("/api/v1/models").get_json()["default"] is None


def test_another_process_sees_the_first_restricting_group_within_the_refresh_interval(
        app, client, user, tmp_path, monkeypatch):
    if get_redis(app) is None:
        pytest.skip("processes share group access through Redis (BESTCHAT_TEST_REDIS_URL)")
    from bestchat import create_app
    from bestchat.providers import models_cache
    from bestchat.testing.pytest_plugin import make_config

    other = create_app(make_config("production", tmp_path / "other", SITE_SETTINGS_REFRESH_SECONDS=60))
    alice = the_user(app)
    with other.app_context():
        assert groups.access(alice.id, admin=False) == groups.EVERYTHING  # no group restricts: kept
    make_group(app, "narrow", ["alice@example.com"], models=["demo/demo"])
    assert model_ids(client) == ["demo/demo"]  # the process that changed it: at once
    with other.app_context():
        assert groups.access(alice.id, admin=False) == groups.EVERYTHING  # still within its interval
        clock = models_cache.time.monotonic() + 61
        monkeypatch.setattr(models_cache.time, "monotonic", lambda: clock)
        assert groups.access(alice.id, admin=False).models == frozenset({"demo/demo"})
