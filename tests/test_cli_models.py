"""``bestchat models [--user EMAIL] [--json]``: the models a user sees in the picker, the
same list as ``GET /api/v1/models`` gives that user, each with the plugin of its provider;
without ``--user``, what a newly registered ordinary user sees."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import User
from bestchat.redis_client import get_redis
from bestchat.services import accounts, groups, provider_configs
from tests.fake_providers import installed

PASSWORD = "correct horse battery"
GLOBAL_KEY = "sk-good-global-0123456789"
USER_KEY = "sk-good-user-0123456789"


@pytest.fixture
def keyed(app):
    """The fake providers (``keyed``: k1, k2 with a key; ``local``: tiny, keyless) and a
    global ``keyed`` connection made by the admin root@example.com."""
    with app.app_context(), installed():
        root = accounts.register("root@example.com", PASSWORD, role="admin")
        provider_configs.create_config(root, {"scope": "global", "provider": "keyed", "api_key": GLOBAL_KEY})
        yield


def models_json(runner, *args: str) -> dict:
    result = runner.invoke(args=["models", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def without_plugin(models: list[dict]) -> list[dict]:
    return [{key: value for key, value in model.items() if key != "plugin"} for model in models]


def test_without_user_it_lists_what_a_new_user_sees(app, runner, client, keyed):
    listed = models_json(runner)
    client.signup("new@example.com", PASSWORD)
    assert without_plugin(listed["models"]) == client.get("/api/v1/models").get_json()["models"]
    assert [(m["id"], m["source"], m["plugin"]) for m in listed["models"]] == [
        ("demo/demo", "builtin", "bestchat-demo"), ("keyed/k1", "global", "test-fake-providers"),
        ("keyed/k2", "global", "test-fake-providers"), ("local/tiny", "builtin", "test-fake-providers")]
    assert listed["default"] == "demo/demo"


def test_a_user_with_a_group_and_a_connection_of_their_own(app, runner, client, keyed):
    client.signup("alice@example.com", PASSWORD)
    assert client.post("/api/v1/providers", {"provider": "keyed", "api_key": USER_KEY,
                                             "enabled_models": ["k1"]}).status_code == 201
    with app.app_context():
        root = accounts.find_by_email("root@example.com")
        group = groups.create_group(root, name="demo only", models=["demo/demo"])
        groups.add_member(root, group, "alice@example.com")
    listed = models_json(runner, "--user", "Alice@Example.com")
    assert without_plugin(listed["models"]) == client.get("/api/v1/models").get_json()["models"]
    assert {m["id"]: m["source"] for m in listed["models"]} == {"demo/demo": "builtin", "keyed/k1": "user"}
    # A newcomer is in no group: the group's rule does not narrow their list.
    assert [m["id"] for m in models_json(runner)["models"]] == ["demo/demo", "keyed/k1", "keyed/k2", "local/tiny"]


def test_the_default_is_null_when_the_user_may_not_use_it(app, runner, client, keyed):
    client.signup("bob@example.com", PASSWORD)
    with app.app_context():
        root = accounts.find_by_email("root@example.com")
        group = groups.create_group(root, name="keyed only", models=["keyed/*"])
        groups.add_member(root, group, "bob@example.com")
    listed = models_json(runner, "--user", "bob@example.com")
    assert [m["id"] for m in listed["models"]] == ["keyed/k1", "keyed/k2"] and listed["default"] is None
    assert client.get("/api/v1/models").get_json()["default"] is None


def test_text_output_is_a_table_with_the_plugin_of_each_model(runner, keyed):
    lines = runner.invoke(args=["models"]).output.splitlines()
    assert lines[0] == "Models of a newly registered user (no connections, in no group):"
    assert lines[1].split() == ["ID", "NAME", "PROVIDER", "PLUGIN", "SOURCE"]
    assert [line.split() for line in lines[2:]] == [
        ["demo/demo", "(default)", "demo", "demo", "bestchat-demo", "builtin"],
        ["keyed/k1", "k1", "keyed", "test-fake-providers", "global"],
        ["keyed/k2", "k2", "keyed", "test-fake-providers", "global"],
        ["local/tiny", "tiny", "local", "test-fake-providers", "builtin"]]


def test_an_unknown_email_is_an_error(runner, user):
    result = runner.invoke(args=["models", "--user", "nobody@example.com"])
    assert result.exit_code == 1
    assert result.output == "Error: no account with the email 'nobody@example.com'\n"


def test_the_newcomer_leaves_nothing_in_the_cache(app, runner, backend, keyed):
    models_json(runner)
    if backend == "production":
        with app.app_context():
            assert list(get_redis().scan_iter(match="bestchat:models:*")) == []
    with app.app_context():
        assert db.session.scalars(select(User.email)).all() == ["root@example.com"]


def test_the_help_says_whose_models_are_listed_without_user(runner):
    result = runner.invoke(args=["models", "--help"])
    assert result.exit_code == 0
    assert "Without --user: what a newly registered ordinary user sees" in " ".join(result.output.split())
