"""Settings changed at runtime (``bestchat.services.site_settings``): each one is stored, takes
effect where users notice it, is audited, and a reset gives the file/environment value back;
bad values change nothing; another app (process) applies a change at its next refresh; a
plugin blocked at runtime loses its models, filters and pages, and its failures are counted."""

from __future__ import annotations

import io
import uuid

import pytest
from flask import Blueprint
from sqlalchemy import select

from bestchat import create_app, plugins
from bestchat.dispatch import get_dispatcher
from bestchat.errors import Invalid
from bestchat.extensions import db
from bestchat.hookspecs import hookimpl
from bestchat.models import AuditLog, Message, ProviderConfig, SiteSetting, User
from bestchat.providers.base import Provider
from bestchat.services import accounts, site_settings
from bestchat.testing.client import Client, assert_error
from bestchat.testing.plugins import plugin_registered
from bestchat.testing.pytest_plugin import TEST_REDIS_URL, make_config

# Settings stored by a test are deleted after it (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("no_site_settings_left")

API = "/api/v1"
FILE_UPLOAD_LIMIT = 5000  # the "file" value of UPLOAD_MAX_BYTES in these tests


@pytest.fixture
def app_config():
    return {"JOBS_IN_PROCESS": True, "UPLOAD_MAX_BYTES": FILE_UPLOAD_LIMIT}


@pytest.fixture
def root(app) -> uuid.UUID:
    """An admin's id."""
    with app.app_context():
        return accounts.register("root@example.com", "correct horse battery", role="admin").id


def change(app, root, **changes):
    with app.app_context():
        return site_settings.update(db.session.get(User, root), changes)


def reset(app, root, *keys):
    with app.app_context():
        site_settings.reset(db.session.get(User, root), list(keys))


def upload(client, size: int):
    return client.request("POST", f"{API}/uploads",
                          data={"file": (io.BytesIO(b"x" * size), "notes.txt", "text/plain")},
                          content_type="multipart/form-data")


def send(client, content="hi", model="demo/demo", settings=None):
    settings = {"tokens_per_second": 0} if settings is None else settings
    conversation = client.post(f"{API}/conversations", {"model": model, "settings": settings})
    assert conversation.status_code == 201, conversation.get_json()
    return client.post(f"{API}/conversations/{conversation.get_json()['id']}/messages", {"content": content})


def finished(app, response) -> Message:
    assert response.status_code == 202, response.get_json()
    get_dispatcher(app).join(15)
    with app.app_context():
        return db.session.get(Message, uuid.UUID(response.get_json()["assistant_message"]["id"]))


# ---- each setting persists and takes effect -------------------------------------------------

def test_a_larger_upload_limit_is_stored_audited_and_applies_at_once_and_reset_restores_the_file_value(
        app, client, user, root):
    assert_error(upload(client, FILE_UPLOAD_LIMIT + 1), 413, "too_large")

    assert change(app, root, UPLOAD_MAX_BYTES="8000") == {"UPLOAD_MAX_BYTES": 8000}
    assert upload(client, FILE_UPLOAD_LIMIT + 1).status_code == 201
    assert_error(upload(client, 8001), 413, "too_large")
    with app.app_context():
        assert db.session.scalar(select(SiteSetting.value).where(SiteSetting.key == "UPLOAD_MAX_BYTES")) == 8000
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "site_settings.updated"))
        assert entry.actor_id == root
        assert entry.details == {"keys": ["UPLOAD_MAX_BYTES"], "values": {"UPLOAD_MAX_BYTES": 8000}}
        assert {item["key"]: item["source"] for item in site_settings.effective()}["UPLOAD_MAX_BYTES"] == "site"

    change(app, root, UPLOAD_MAX_BYTES=2000)
    assert_error(upload(client, 2001), 413, "too_large")

    reset(app, root, "UPLOAD_MAX_BYTES")
    assert app.config["UPLOAD_MAX_BYTES"] == FILE_UPLOAD_LIMIT
    assert upload(client, FILE_UPLOAD_LIMIT).status_code == 201
    assert_error(upload(client, FILE_UPLOAD_LIMIT + 1), 413, "too_large")
    with app.app_context():
        assert db.session.scalar(select(SiteSetting).where(SiteSetting.key == "UPLOAD_MAX_BYTES")) is None
        assert db.session.scalar(select(AuditLog.details).where(AuditLog.action == "site_settings.reset")) \
            == {"keys": ["UPLOAD_MAX_BYTES"]}


def test_a_lower_sign_up_rate_refuses_the_next_sign_up(app, client, root):
    change(app, root, RATELIMIT_REGISTER_PER_IP="1/3600")
    assert client.post(f"{API}/auth/register", {"email": "a@example.com", "password": "correct horse battery"}
                       ).status_code == 201
    assert_error(client.new().post(f"{API}/auth/register", {"email": "b@example.com",
                                                            "password": "correct horse battery"}),
                 429, "rate_limited")


def test_a_lower_sign_in_rate_refuses_the_next_sign_in(app, client, user, root):
    other = client.new()
    other.login("alice@example.com", "correct horse battery")
    change(app, root, RATELIMIT_LOGIN_PER_IP="1/3600")  # this address signed in already
    assert_error(other.post(f"{API}/auth/login", {"email": "alice@example.com", "password": "correct horse battery"}),
                 429, "rate_limited")


def test_a_lower_send_rate_and_generation_limit_apply_to_the_next_send(app, client, user, root):
    change(app, root, RATELIMIT_SEND_PER_USER="1/3600")
    assert finished(app, send(client, "one")).status == "complete"
    assert_error(send(client, "two"), 429, "rate_limited")

    reset(app, root, "RATELIMIT_SEND_PER_USER")
    change(app, root, USER_MAX_ACTIVE_GENERATIONS=0)
    assert finished(app, send(client, "three")).status == "complete"


def test_the_default_model_is_what_the_models_list_says_and_must_be_offered(app, client, user, root):
    with app.app_context():
        db.session.add(ProviderConfig(user_id=None, provider="openai", name="team", base_url="http://127.0.0.1:9/v1",
                                      enabled_models=["team-model"]))
        db.session.commit()
    assert client.get(f"{API}/models").get_json()["default"] == "demo/demo"

    change(app, root, DEFAULT_MODEL="openai/team-model")
    assert client.get(f"{API}/models").get_json()["default"] == "openai/team-model"

    with pytest.raises(Invalid, match="must be a model the server offers"):
        change(app, root, DEFAULT_MODEL="openai/not-there")
    assert client.get(f"{API}/models").get_json()["default"] == "openai/team-model"
    reset(app, root, "DEFAULT_MODEL")
    assert client.get(f"{API}/models").get_json()["default"] == "demo/demo"


def test_the_default_context_chain_is_what_the_strategies_list_says(app, client, user, root):
    assert client.get(f"{API}/context-strategies").get_json()["default"] == ["compress", "summarize", "truncate"]
    change(app, root, CONTEXT_STRATEGIES=["truncate"])
    assert client.get(f"{API}/context-strategies").get_json()["default"] == ["truncate"]
    with pytest.raises(Invalid, match="unknown strategy 'nope'"):
        change(app, root, CONTEXT_STRATEGIES=["truncate", "nope"])


def test_registration_is_stored_and_applied_to_the_config(app, root):
    assert app.config.get("REGISTRATION", "open") == "open"
    change(app, root, REGISTRATION="closed")
    assert app.config["REGISTRATION"] == "closed"
    change(app, root, REGISTRATION="invite")
    assert app.config["REGISTRATION"] == "invite"
    reset(app, root, "REGISTRATION")
    assert app.config.get("REGISTRATION", "open") == "open"


@pytest.mark.parametrize("changes", [
    {"REGISTRATION": "maybe"}, {"UPLOAD_MAX_BYTES": "lots"}, {"UPLOAD_MAX_BYTES": 10},
    {"UPLOAD_MAX_BYTES": 2 * 1024 ** 4}, {"RATELIMIT_SEND_PER_USER": "30 per minute"},
    {"RATELIMIT_LOGIN_PER_IP": "0/60"}, {"USER_MAX_ACTIVE_GENERATIONS": -1},
    {"BLOCKED_PLUGINS": ["no-such-plugin"]}, {"SECRET_KEY": "x"}, {"DATABASE_URL": "sqlite://"},
])
def test_a_bad_value_changes_nothing_even_beside_good_ones(app, root, changes):
    before = dict(app.config)
    with pytest.raises(Invalid):
        change(app, root, RATELIMIT_REGISTER_PER_IP="5/60", **changes)
    assert app.config["RATELIMIT_REGISTER_PER_IP"] == before["RATELIMIT_REGISTER_PER_IP"]
    with app.app_context():
        assert db.session.scalars(select(SiteSetting)).all() == []
        assert db.session.scalar(select(AuditLog).where(AuditLog.action.like("site_settings.%"))) is None


def test_stored_settings_apply_when_a_process_starts(app, root, tmp_path, backend):
    change(app, root, UPLOAD_MAX_BYTES=7000)
    if backend == "production":
        config = make_config(backend, tmp_path / "second", UPLOAD_MAX_BYTES=FILE_UPLOAD_LIMIT)
    else:
        config = make_config(backend, tmp_path / "second", UPLOAD_MAX_BYTES=FILE_UPLOAD_LIMIT,
                             DATABASE_URL=app.config["DATABASE_URL"])
    started = create_app(config)
    assert started.config["UPLOAD_MAX_BYTES"] == 7000


# ---- across processes: another app applies a change at its next refresh ---------------------

@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis (set BESTCHAT_TEST_REDIS_URL)")
def test_another_app_applies_a_change_and_a_reset_within_its_refresh_interval(app, root, tmp_path, backend):
    if backend != "production":
        pytest.skip("embedded mode is one process")
    other = create_app(make_config(backend, tmp_path / "other", UPLOAD_MAX_BYTES=FILE_UPLOAD_LIMIT,
                                   SITE_SETTINGS_REFRESH_SECONDS=0))
    change(app, root, UPLOAD_MAX_BYTES=9000)
    assert other.config["UPLOAD_MAX_BYTES"] == FILE_UPLOAD_LIMIT  # not yet: no request since
    other.test_client().get("/healthz")  # a request refreshes
    assert other.config["UPLOAD_MAX_BYTES"] == 9000
    reset(app, root, "UPLOAD_MAX_BYTES")
    other.test_client().get("/healthz")
    assert other.config["UPLOAD_MAX_BYTES"] == FILE_UPLOAD_LIMIT


# ---- plugins blocked at runtime -------------------------------------------------------------

class Recorder:
    """A plugin with a message filter and a page; counts its filter's calls."""

    def __init__(self, fail: bool = False):
        self.calls = 0
        self.fail = fail

    @hookimpl
    def before_generate(self, conversation, messages):
        self.calls += 1
        if self.fail:
            raise RuntimeError("filter broke")
        return None

    @hookimpl
    def register_blueprints(self, app):
        page = Blueprint("recorder_page", __name__)
        page.add_url_rule("/recorder", "index", lambda: "recorder here")
        app.register_blueprint(page)


def test_a_blocked_plugins_filter_stops_and_its_page_is_404_until_unblocked(app, client, root):
    recorder = Recorder()
    with plugin_registered(recorder, "recorder"):
        plugins.run_register_blueprints(app)  # (before the app's first request, as at start)
        client.signup("alice@example.com", "correct horse battery")
        assert client.get("/recorder").status_code == 200
        assert finished(app, send(client)).status == "complete"
        assert recorder.calls == 1

        change(app, root, BLOCKED_PLUGINS=["recorder"])
        assert {p["name"]: (p["status"], p["error"]) for p in plugins.get_plugins()}["recorder"] \
            == ("blocked", "blocked by an admin")
        assert finished(app, send(client)).status == "complete"
        assert recorder.calls == 1
        assert client.get("/recorder").status_code == 404

        reset(app, root, "BLOCKED_PLUGINS")
        assert finished(app, send(client)).status == "complete"
        assert recorder.calls == 2
        assert client.get("/recorder").status_code == 200


class AdminPage:
    """A plugin adding an admin page."""

    @hookimpl
    def register_admin_views(self, admin):
        from flask_admin import expose

        from bestchat.admin.base import SecureView

        class Hello(SecureView):
            @expose("/")
            def index(self):
                return "hello, admin"

        admin.add_view(Hello(name="Hello", endpoint="hello_admin"))


def test_a_blocked_plugins_admin_page_is_404_until_unblocked(app, root):
    with plugin_registered(AdminPage(), "admin-page"):
        plugins.run_register_admin_views(app.extensions["admin"][0])
        admin = Client(app)
        admin.login("root@example.com", "correct horse battery")
        assert admin.get("/admin/hello_admin/").get_data(as_text=True) == "hello, admin"
        change(app, root, BLOCKED_PLUGINS=["admin-page"])
        assert admin.get("/admin/hello_admin/").status_code == 404
        reset(app, root, "BLOCKED_PLUGINS")
        assert admin.get("/admin/hello_admin/").status_code == 200


def test_a_blocked_provider_plugins_models_disappear_and_sends_naming_them_fail(app, client, user, root):
    assert "demo/demo" in [m["id"] for m in client.get(f"{API}/models").get_json()["models"]]
    change(app, root, BLOCKED_PLUGINS=["bestchat-demo"])
    assert "demo/demo" not in [m["id"] for m in client.get(f"{API}/models").get_json()["models"]]
    assert "demo" not in plugins.get_providers()
    failed = finished(app, send(client, settings={}))
    assert failed.status == "failed"
    reset(app, root, "BLOCKED_PLUGINS")
    assert "demo/demo" in [m["id"] for m in client.get(f"{API}/models").get_json()["models"]]
    assert finished(app, send(client)).status == "complete"


def test_a_plugin_blocked_by_the_environment_stays_blocked_and_unknown_names_are_refused(app, root):
    with pytest.raises(Invalid, match="unknown plugin 'nope'"):
        change(app, root, BLOCKED_PLUGINS=["nope"])


def test_failures_of_a_hook_are_counted_per_plugin_here_and_over_all_processes(app, client, user, backend):
    raiser = Recorder(fail=True)
    before = plugins.failure_counts().get("raiser", 0)
    with plugin_registered(raiser, "raiser"):
        assert finished(app, send(client)).status == "complete"  # a broken filter is skipped
        assert finished(app, send(client)).status == "complete"
    assert plugins.failure_counts()["raiser"] == before + 2
    with app.app_context():
        total = plugins.total_failure_counts()
    if backend == "production":
        assert total[0]["raiser"] == 2
    else:
        assert total is None


def test_a_tool_that_raises_counts_as_a_failure_of_its_plugin(app):
    from types import SimpleNamespace

    from bestchat.tools.sandbox import run_tool
    from tests import sandbox_tools

    broken = SimpleNamespace(name="boom", function=sandbox_tools.boom, risk="low", timeout=None, network=False,
                             plugin="tool-maker")
    before = plugins.failure_counts().get("tool-maker", 0)
    with app.app_context():
        outcome = run_tool(broken, {}, config=app.config)
        assert (outcome.status, outcome.error) == ("failed", "ValueError: the tool broke")
        assert run_tool(SimpleNamespace(**{**vars(broken), "function": sandbox_tools.not_json}), {},
                        config=app.config).status == "failed"  # not the tool raising: not counted
    assert plugins.failure_counts()["tool-maker"] == before + 1


class BrokenProvider(Provider):
    """A keyless provider whose stream has a bug."""

    name = "broken"
    needs_key = False
    default_models = ("b1",)

    def stream(self, model, messages, options=None, tools=None):
        raise RuntimeError("provider bug")
        yield  # (a generator)


class BrokenProviderPlugin:
    @hookimpl
    def register_providers(self, register):
        register(BrokenProvider)


def test_a_provider_that_raises_fails_the_answer_and_counts_as_a_failure_of_its_plugin(app, client, user):
    before = plugins.failure_counts().get("broken-maker", 0)
    with plugin_registered(BrokenProviderPlugin(), "broken-maker"):
        answer = finished(app, send(client, model="broken/b1", settings={}))
    assert answer.status == "failed"
    assert plugins.failure_counts()["broken-maker"] == before + 1


def test_a_context_strategy_that_raises_is_skipped_and_counts_as_a_failure_of_its_plugin():
    from bestchat.context.chain import run_chain
    from tests.test_context_chain import FakeSummaries, Raises, long_items, rough

    class PluginRaises(Raises):
        plugin = "strategy-maker"

    before = plugins.failure_counts().get("strategy-maker", 0)
    assembled = run_chain(long_items(), budget=1000, chain=["raises"], strategies={"raises": PluginRaises},
                          count=rough, summaries=FakeSummaries())
    assert assembled.tokens <= 1000
    assert plugins.failure_counts()["strategy-maker"] == before + 1
