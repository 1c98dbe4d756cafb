"""The console's Connections page: access control, CSRF, create, edit (key write-only),
discover, choose models with display names, test, reorder, delete; no key and no user's base
URL in any page."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import AuditLog, ProviderConfig
from bestchat.providers import registry
from bestchat.testing.client import Client
from bestchat.testing.fake_openai import FakeOpenAI

PASSWORD = "correct horse battery"
KEY = "sk-console-0123456789abcdefK3Y9"
NEW_KEY = "sk-console-replaced-987654N3W2"
MODELS = ("llama3.2:1b", "qwen2.5:0.5b")
BASE = "/admin/connections"


@pytest.fixture
def server():
    with FakeOpenAI(api_key=KEY, models=MODELS) as fake:
        yield fake


class Pages:
    """Every page the test fetched, to check none carries a secret."""

    def __init__(self, client: Client):
        self.client = client
        self.seen: list[str] = []

    def get(self, path: str, status: int = 200) -> str:
        response = self.client.http.get(path)
        assert response.status_code == status, (path, response.status_code)
        self.seen.append(response.get_data(as_text=True))
        return self.seen[-1]

    def post(self, path: str, data: dict | None = None, *, follow: bool = True, status: int = 200):
        response = self.client.http.post(path, data={**(data or {}), "csrf_token": self.client.csrf},
                                         follow_redirects=follow)
        assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:500])
        self.seen.append(response.get_data(as_text=True))
        return self.seen[-1]


def stored(app, **where) -> list[ProviderConfig]:
    with app.app_context():
        rows = db.session.scalars(select(ProviderConfig).filter_by(**where)
                                  .order_by(ProviderConfig.priority)).all()
        db.session.expunge_all()
        return rows


def key_of(app, config_id) -> str | None:
    with app.app_context():
        config = db.session.get(ProviderConfig, config_id)
        return registry.build_provider(registry.provider_classes()[config.provider], config).settings.api_key


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.created_at)))


def create(pages: Pages, url: str, **form) -> str:
    return pages.post(f"{BASE}/new", {"provider": "openai", "name": "Team Ollama", "base_url": url,
                                       "api_key": KEY, "priority": "100", "enabled": "on", **form})


# ---- access control -------------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_sign_in(client):
    for path in (f"{BASE}/", f"{BASE}/new"):
        response = client.http.get(path)
        assert response.status_code == 302 and response.headers["Location"] == f"/login?next={path}"
    response = client.http.post(f"{BASE}/new", data={"provider": "openai"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_non_admins_are_refused(app, client, user, admin, server):
    create(Pages(admin), server.url)
    config_id = stored(app)[0].id
    for path in (f"{BASE}/", f"{BASE}/new", f"{BASE}/{config_id}/", f"{BASE}/{config_id}/delete"):
        assert client.http.get(path).status_code == 403
    for action in ("discover", "test", "move", "delete"):
        response = client.http.post(f"{BASE}/{config_id}/{action}", data={"csrf_token": client.csrf})
        assert response.status_code == 403
    assert len(stored(app)) == 1


def test_unsafe_requests_without_the_csrf_token_are_refused(app, admin, server):
    create(Pages(admin), server.url)
    config_id = stored(app)[0].id
    before = actions(app)
    refused = [
        admin.http.post(f"{BASE}/new", data={"provider": "openai", "base_url": server.url}),
        admin.http.post(f"{BASE}/{config_id}/", data={"name": "Renamed"}),
        admin.http.post(f"{BASE}/{config_id}/discover"),
        admin.http.post(f"{BASE}/{config_id}/test"),
        admin.http.post(f"{BASE}/{config_id}/move", data={"direction": "down"}),
        admin.http.post(f"{BASE}/{config_id}/delete"),
    ]
    assert [r.status_code for r in refused] == [403] * 6
    assert [c.name for c in stored(app)] == ["Team Ollama"] and actions(app) == before


def test_unknown_and_malformed_ids_are_not_found(app, client, admin, server):
    pages = Pages(admin)
    pages.get(f"{BASE}/{uuid.uuid4()}/", status=404)
    pages.get(f"{BASE}/not-a-uuid/", status=404)
    pages.post(f"{BASE}/{uuid.uuid4()}/discover", follow=False, status=404)
    # A user's own connection is not a console connection.
    alice = client.new()
    alice.signup("alice@example.com", PASSWORD)
    own = alice.post("/api/v1/providers", {"provider": "openai", "base_url": server.url}).get_json()
    pages.get(f"{BASE}/{own['id']}/", status=404)
    pages.post(f"{BASE}/{own['id']}/delete", follow=False, status=404)
    assert len(stored(app)) == 1


# ---- the admin's work -------------------------------------------------------------------------

def test_create_discovers_and_lists_the_connection(app, admin, server):
    pages = Pages(admin)
    page = create(pages, server.url)
    assert "Discovery: the server lists 2 model(s)." in page and "llama3.2:1b" in page
    [config] = stored(app)
    assert config.user_id is None and config.discovered_models == list(MODELS)
    listing = pages.get(f"{BASE}/")
    assert "Team Ollama" in listing and server.url in listing and "&bull;&bull;&bull;&bull;K3Y9" in listing
    assert "all 2 discovered" in listing
    assert {"provider_config.created", "provider_config.models_discovered"} <= set(actions(app))
    assert KEY not in "".join(pages.seen)


def test_bad_input_is_shown_and_nothing_is_saved(app, admin):
    pages = Pages(admin)
    page = pages.post(f"{BASE}/new", {"provider": "openai", "base_url": "ftp://nowhere"}, status=400)
    assert "must be an http(s) URL" in page
    page = pages.post(f"{BASE}/new", {"provider": "openai", "priority": "soon"}, status=400)
    assert "whole number" in page
    assert stored(app) == []


def test_edit_keeps_replaces_and_removes_the_key(app, admin, server):
    pages = Pages(admin)
    create(pages, server.url)
    config_id = stored(app)[0].id
    page = pages.post(f"{BASE}/{config_id}/", {"name": "Renamed", "base_url": server.url, "api_key": "",
                                                "priority": "100", "enabled": "on"})
    assert "Connection &#39;Renamed&#39; saved." in page or "Connection 'Renamed' saved." in page
    assert key_of(app, config_id) == KEY
    pages.post(f"{BASE}/{config_id}/", {"name": "Renamed", "base_url": server.url, "api_key": NEW_KEY,
                                         "priority": "100", "enabled": "on"})
    assert key_of(app, config_id) == NEW_KEY
    page = pages.post(f"{BASE}/{config_id}/", {"name": "Renamed", "base_url": server.url, "remove_key": "on",
                                                "priority": "100"})
    assert key_of(app, config_id) is None and stored(app)[0].enabled is False
    assert "no key" in pages.get(f"{BASE}/")
    assert "provider_config.key_changed" in actions(app)
    everything = "".join(pages.seen)
    assert KEY not in everything and NEW_KEY not in everything


def test_choose_models_and_display_names(app, client, admin, server):
    pages = Pages(admin)
    create(pages, server.url)
    config_id = stored(app)[0].id
    pages.post(f"{BASE}/{config_id}/", {"name": "Team Ollama", "base_url": server.url, "enabled": "on",
                                         "priority": "100", "models_form": "1", "model": "qwen2.5:0.5b",
                                         "display:qwen2.5:0.5b": "Qwen small", "display:llama3.2:1b": ""})
    [config] = stored(app)
    assert config.enabled_models == ["qwen2.5:0.5b"] and config.model_names == {"qwen2.5:0.5b": "Qwen small"}
    alice = client.new()
    alice.signup("alice@example.com", PASSWORD)
    models = {m["id"]: m["name"] for m in alice.get("/api/v1/models").get_json()["models"]}
    assert models.get("openai/qwen2.5:0.5b") == "Qwen small" and "openai/llama3.2:1b" not in models
    assert "Qwen small" in pages.get(f"{BASE}/{config_id}/")


def test_discover_refreshes_and_test_names_the_model_tried(app, admin, server):
    pages = Pages(admin)
    create(pages, server.url)
    config_id = stored(app)[0].id
    server.models = (*MODELS, "mistral:7b")
    page = pages.post(f"{BASE}/{config_id}/discover")
    assert "the server lists 3 model(s)" in page and "mistral:7b" in page
    page = pages.post(f"{BASE}/{config_id}/test")
    assert "Test passed: model &#39;llama3.2:1b&#39; answered." in page
    pages.post(f"{BASE}/{config_id}/", {"name": "x", "base_url": server.url, "enabled": "on", "priority": "1",
                                         "models_form": "1", "extra_models": "gpt-4o\n"})
    page = pages.post(f"{BASE}/{config_id}/test")
    assert "Test failed" in page and "none of the offered models (gpt-4o)" in page
    assert [r.body["model"] for r in server.requests if r.method == "POST"] == ["llama3.2:1b"]


def test_reorder_changes_the_failover_order(app, admin, server):
    pages = Pages(admin)
    for name in ("First", "Second", "Third"):
        create(pages, server.url, name=name)
    assert [c.name for c in stored(app)] == ["First", "Second", "Third"]
    third = stored(app)[2].id
    pages.post(f"{BASE}/{third}/move", {"direction": "up"})
    assert [c.name for c in stored(app)] == ["First", "Third", "Second"]
    pages.post(f"{BASE}/{third}/move", {"direction": "up"})
    pages.post(f"{BASE}/{third}/move", {"direction": "up"})  # already first: nothing moves
    assert [(c.name, c.priority) for c in stored(app)] == [("Third", 10), ("First", 20), ("Second", 30)]
    page = pages.post(f"{BASE}/{third}/move", {"direction": "sideways"})
    assert "&#39;direction&#39; must be" in page
    assert actions(app).count("provider_config.reordered") == 2


def test_delete_asks_first_then_deletes(app, admin, server):
    pages = Pages(admin)
    create(pages, server.url)
    config_id = stored(app)[0].id
    assert "Delete connection" in pages.get(f"{BASE}/{config_id}/delete")
    assert len(stored(app)) == 1
    page = pages.post(f"{BASE}/{config_id}/delete")
    assert "deleted" in page and stored(app) == []
    assert "provider_config.deleted" in actions(app)


def test_users_connections_are_counted_not_shown(app, client, admin, server):
    alice = client.new()
    alice.signup("alice@example.com", PASSWORD)
    with FakeOpenAI() as private:
        alice.post("/api/v1/providers", {"provider": "openai", "base_url": private.url, "api_key": NEW_KEY})
        pages = Pages(admin)
        listing = pages.get(f"{BASE}/")
        assert "OpenAI-compatible API: 1" in listing
        assert private.url not in listing and str(private.port) not in listing and NEW_KEY not in listing
