"""``/api/v1/providers`` and ``/api/v1/models``: bring-your-own-key configs, global configs,
validation, ownership, the write-only key, audit and the models cache."""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import select, text, update

from bestchat.extensions import db
from bestchat.models import AuditLog, ProviderConfig
from bestchat.providers import registry
from bestchat.redaction import REDACTED
from bestchat.services import accounts
from bestchat.testing.client import assert_error
from tests import fake_providers

KEY = "sk-good-0123456789abcdefWXYZ"
OTHER_KEY = "sk-good-zyxwvu9876543210QRST"


@pytest.fixture(autouse=True)
def providers(app):
    with fake_providers.installed():
        yield


def create(client, **body):
    body.setdefault("provider", "keyed")
    response = client.post("/api/v1/providers", body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def make_admin(client, email="root@example.com"):
    admin = client.new()
    admin.signup(email, "correct horse battery")
    with client.app.app_context():
        accounts.set_role(None, accounts.find_by_email(email), "admin")
    return admin


def stored_key(app, config_id) -> str | None:
    """The key a provider built from this config would use."""
    with app.app_context():
        config = db.session.get(ProviderConfig, uuid.UUID(config_id))
        cls = registry.provider_classes()[config.provider]
        return registry.build_provider(cls, config).settings.api_key


def test_create_returns_config_without_key(client, user, app):
    data = create(client, name="Mine", api_key=KEY, enabled_models=["k1"], priority=5,
                  options={"temperature": 0.5, "region": "eu"})
    assert data["provider"] == "keyed" and data["name"] == "Mine" and data["scope"] == "user"
    assert data["has_key"] is True and data["key_last4"] == "WXYZ" and data["editable"] is True
    assert data["enabled_models"] == ["k1"] and data["priority"] == 5
    assert data["options"] == {"temperature": 0.5, "region": "eu"}
    assert "api_key" not in data and KEY not in str(data)
    assert stored_key(app, data["id"]) == KEY

    listed = client.get("/api/v1/providers").get_json()
    assert [c["id"] for c in listed["providers"]] == [data["id"]]
    assert {"name": "keyed", "label": "Keyed", "needs_key": True}.items() <= next(
        t for t in listed["provider_types"] if t["name"] == "keyed").items()
    assert client.get(f"/api/v1/providers/{data['id']}").get_json() == data


def test_short_key_has_no_last4(client, user):
    assert create(client, api_key="sk-good-1")["key_last4"] is None


def test_key_is_encrypted_at_rest(client, user, app):
    data = create(client, api_key=KEY)
    create(client, api_key=OTHER_KEY)
    client.put(f"/api/v1/providers/{data['id']}", {"api_key": KEY + "2"})
    with app.app_context():
        rows = db.session.execute(text("SELECT * FROM provider_configs")).all()
        audit_rows = db.session.execute(text("SELECT * FROM audit_log")).all()
    assert len(rows) == 2
    dump = repr(rows) + repr(audit_rows)
    for secret in (KEY, OTHER_KEY, KEY[8:], "0123456789abcdef"):
        assert secret not in dump
    assert all(row._mapping["api_key_encrypted"].startswith("gAAAA") for row in rows)


def test_key_never_in_responses_errors_or_logs(client, user, app, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = []

    def call(method, path, body=None):
        response = client.request(method, path, json=body)
        bodies.append(response.get_data(as_text=True))
        return response

    config_id = call("POST", "/api/v1/providers", {"provider": "keyed", "api_key": KEY}).get_json()["id"]
    call("GET", "/api/v1/providers")
    call("GET", f"/api/v1/providers/{config_id}")
    call("PUT", f"/api/v1/providers/{config_id}", {"api_key": KEY, "name": "x"})
    call("GET", "/api/v1/models")
    assert call("POST", f"/api/v1/providers/{config_id}/test").get_json()["ok"] is True
    assert_error(call("POST", "/api/v1/providers", {"provider": "keyed", "api_key": KEY,
                                                    "base_url": "ftp://x"}), 400)
    assert_error(call("POST", "/api/v1/providers", {"provider": "nope", "api_key": KEY}), 400)
    assert_error(call("PUT", f"/api/v1/providers/{config_id}", {"api_key": KEY, "priority": -1}), 400)
    bad = "sk-bad-0123456789abcdefBAD1"
    call("PUT", f"/api/v1/providers/{config_id}", {"api_key": bad})
    result = call("POST", f"/api/v1/providers/{config_id}/test").get_json()
    assert result["ok"] is False and "Incorrect API key" in result["error"]
    assert fake_providers.KeyedProvider.calls[-1]["key"] == bad  # the provider did get it

    everything = "\n".join(bodies) + caplog.text
    assert KEY not in everything and bad not in everything
    assert REDACTED in result["error"]


def test_update_keeps_replaces_and_removes_key(client, user, app):
    config_id = create(client, api_key=KEY)["id"]
    updated = client.put(f"/api/v1/providers/{config_id}", {"name": "Renamed", "enabled": False})
    assert updated.status_code == 200
    assert updated.get_json()["name"] == "Renamed" and updated.get_json()["enabled"] is False
    assert updated.get_json()["has_key"] is True and stored_key(app, config_id) == KEY

    replaced = client.put(f"/api/v1/providers/{config_id}", {"api_key": OTHER_KEY}).get_json()
    assert replaced["key_last4"] == "QRST" and stored_key(app, config_id) == OTHER_KEY

    assert_error(client.put(f"/api/v1/providers/{config_id}", {"api_key": ""}), 400, "missing_field")
    assert_error(client.put(f"/api/v1/providers/{config_id}", {"api_key": None}), 400, "missing_field")
    assert stored_key(app, config_id) == OTHER_KEY

    with_url = client.put(f"/api/v1/providers/{config_id}",
                          {"api_key": None, "base_url": "http://127.0.0.1:11434/v1/"}).get_json()
    assert with_url["has_key"] is False and with_url["key_last4"] is None
    assert with_url["base_url"] == "http://127.0.0.1:11434/v1"


@pytest.mark.parametrize("body, code", [
    ({"provider": "nope", "api_key": KEY}, "unknown_provider"),
    ({"api_key": KEY}, "missing_field"),
    ({"provider": "keyed"}, "missing_field"),
    ({"provider": "keyed", "api_key": ""}, "missing_field"),
    ({"provider": "keyed", "api_key": "   "}, "missing_field"),
    ({"provider": "keyed", "api_key": "sk has spaces"}, "invalid_field"),
    ({"provider": "keyed", "api_key": 12345}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "base_url": "ftp://example.com"}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "base_url": "http://"}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "base_url": "example.com/v1"}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "base_url": "http://u:p@example.com"}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "base_url": "http://example.com:99999"}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "base_url": ""}, "missing_field"),
    ({"provider": "keyed", "api_key": KEY, "options": {"temperature": 9}}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "options": {"unknown": 1}}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "fallbacks": ["no-slash"]}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "enabled_models": [""]}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "priority": 10_001}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "enabled": "yes"}, "invalid_field"),
    ({"provider": "keyed", "api_key": KEY, "scope": "team"}, "invalid_field"),
    ({"provider": "selfhosted"}, "missing_field"),
])
def test_invalid_bodies_are_400(client, user, body, code):
    error = assert_error(client.post("/api/v1/providers", body), 400, code)
    assert KEY not in error["message"]
    assert client.get("/api/v1/providers").get_json()["providers"] == []


def test_key_optional_with_base_url_and_for_keyless_providers(client, user):
    local = create(client, provider="keyed", base_url="http://localhost:8080/v1")
    assert local["has_key"] is False
    assert create(client, provider="local")["has_key"] is False
    assert create(client, provider="selfhosted", base_url="https://llm.internal")["base_url"] == "https://llm.internal"


def test_other_users_configs_are_invisible(client, user):
    config_id = create(client, api_key=KEY)["id"]
    bob = client.new()
    bob.signup("bob@example.com", "correct horse battery")
    assert bob.get("/api/v1/providers").get_json()["providers"] == []
    assert_error(bob.get(f"/api/v1/providers/{config_id}"), 404, "not_found")
    assert_error(bob.put(f"/api/v1/providers/{config_id}", {"name": "mine"}), 404)
    assert_error(bob.delete(f"/api/v1/providers/{config_id}"), 404)
    assert_error(bob.post(f"/api/v1/providers/{config_id}/test"), 404)
    assert_error(bob.get("/api/v1/providers/not-a-uuid"), 404)
    assert all(m["source"] != "user" for m in bob.get("/api/v1/models").get_json()["models"])
    assert client.get(f"/api/v1/providers/{config_id}").get_json()["name"] == "Keyed"


def test_anonymous_is_401(client):
    assert_error(client.get("/api/v1/providers"), 401)
    assert_error(client.get("/api/v1/models"), 401)


def test_global_configs_admin_only_and_read_only(client, user):
    assert_error(client.post("/api/v1/providers", {"provider": "keyed", "api_key": KEY, "scope": "global"}),
                 403, "forbidden")
    admin = make_admin(client)
    shared = create(admin, api_key=KEY, scope="global", name="Shared")
    assert shared["scope"] == "global" and shared["editable"] is True and shared["key_last4"] == "WXYZ"

    seen = client.get("/api/v1/providers").get_json()["providers"]
    assert [(c["id"], c["scope"], c["editable"], c["key_last4"]) for c in seen] == [
        (shared["id"], "global", False, None)]
    assert_error(client.put(f"/api/v1/providers/{shared['id']}", {"name": "hijack"}), 403)
    assert_error(client.delete(f"/api/v1/providers/{shared['id']}"), 403)
    assert_error(client.post(f"/api/v1/providers/{shared['id']}/test"), 403)
    assert_error(admin.put(f"/api/v1/providers/{shared['id']}", {"scope": "user"}), 400)
    assert_error(admin.put(f"/api/v1/providers/{shared['id']}", {"provider": "other"}), 400)
    assert admin.put(f"/api/v1/providers/{shared['id']}", {"priority": 1}).get_json()["priority"] == 1
    assert admin.delete(f"/api/v1/providers/{shared['id']}").status_code == 204


def test_delete_and_audit_trail(client, user, app):
    config_id = create(client, api_key=KEY)["id"]
    client.put(f"/api/v1/providers/{config_id}", {"name": "n", "api_key": OTHER_KEY})
    client.put(f"/api/v1/providers/{config_id}", {"priority": 3})
    assert client.delete(f"/api/v1/providers/{config_id}").status_code == 204
    assert_error(client.get(f"/api/v1/providers/{config_id}"), 404)
    with app.app_context():
        rows = db.session.scalars(
            select(AuditLog).where(AuditLog.target_id == config_id).order_by(AuditLog.created_at)
        ).all()
        trail = [(r.action, r.details) for r in rows]
    assert trail == [
        ("provider_config.created", {"provider": "keyed", "name": "Keyed", "scope": "user", "has_key": True}),
        ("provider_config.updated", {"fields": ["name"]}),
        ("provider_config.key_changed", {"key": "replaced"}),
        ("provider_config.updated", {"fields": ["priority"]}),
        ("provider_config.deleted", {"provider": "keyed", "name": "n"}),
    ]


def test_models_lists_user_global_and_builtin(client, user):
    create(client, api_key=KEY, enabled_models=["k1"])
    create(client, provider="other", api_key=KEY, enabled=False)
    admin = make_admin(client)
    create(admin, api_key=KEY, scope="global", enabled_models=["k1", "k2"])
    models = {m["id"]: m for m in client.get("/api/v1/models").get_json()["models"]}
    assert models["keyed/k1"]["source"] == "user"
    assert models["keyed/k2"]["source"] == "global"
    assert models["local/tiny"]["source"] == "builtin"
    assert models["keyed/k1"]["provider"] == "keyed" and models["keyed/k1"]["name"] == "k1"
    assert models["keyed/k1"]["capabilities"]["streaming"] is True
    assert not any(m.startswith(("other/", "selfhosted/")) for m in models)


def test_models_cache_is_invalidated_by_config_changes(client, user, app, backend):
    config_id = create(client, api_key=KEY, enabled_models=["k1"])["id"]

    def model_ids(c=client):
        return {m["id"] for m in c.get("/api/v1/models").get_json()["models"] if m["source"] != "builtin"}

    assert model_ids() == {"keyed/k1"}
    # A change behind the service's back is only seen without a cache.
    with app.app_context():
        db.session.execute(update(ProviderConfig).values(enabled_models=["k9"]))
        db.session.commit()
    assert model_ids() == ({"keyed/k1"} if backend == "production" else {"keyed/k9"})

    client.put(f"/api/v1/providers/{config_id}", {"enabled_models": ["k2"]})
    assert model_ids() == {"keyed/k2"}

    admin = make_admin(client)
    assert model_ids(admin) == set()
    shared = create(admin, api_key=KEY, scope="global", enabled_models=["k1"])
    assert model_ids() == {"keyed/k1", "keyed/k2"}
    assert model_ids(admin) == {"keyed/k1"}
    admin.delete(f"/api/v1/providers/{shared['id']}")
    assert model_ids() == {"keyed/k2"} and model_ids(admin) == set()
    client.delete(f"/api/v1/providers/{config_id}")
    assert model_ids() == set()


def test_test_endpoint_reports_success(client, user):
    config_id = create(client, api_key=KEY, enabled_models=["k2"], options={"region": "eu"})["id"]
    assert client.post(f"/api/v1/providers/{config_id}/test").get_json() == {"ok": True, "model": "k2",
                                                                         "not_listed": []}
    call = fake_providers.KeyedProvider.calls[-1]
    assert call["model"] == "k2" and call["options"].max_tokens == 1 and call["options"].region == "eu"


# ---- discovery fields, what a config serves, display names ----------------------------------

def test_configs_carry_discovery_fields_and_what_they_serve(client, user):
    plain = create(client, api_key=KEY)
    assert plain["discovered_models"] is None and plain["models_refreshed_at"] is None
    assert plain["model_names"] == {} and "discovery" not in plain
    offered = {m["id"] for m in client.get("/api/v1/models").get_json()["models"]}
    assert {"keyed/k1", "keyed/k2"} <= offered  # no base URL: the provider's defaults

    client.delete(f"/api/v1/providers/{plain['id']}")
    # A provider that cannot list models, at a base URL: the failure is reported, the config
    # saved, and the provider's default names are not offered for someone else's server.
    custom = create(client, base_url="http://127.0.0.1:11434/v1")
    assert custom["discovery"]["ok"] is False and custom["discovery"]["code"] == "discovery_unsupported"
    offered = {m["id"] for m in client.get("/api/v1/models").get_json()["models"]}
    assert not {"keyed/k1", "keyed/k2"} & offered
    named = client.put(f"/api/v1/providers/{custom['id']}", {"enabled_models": ["mine"],
                                                           "model_names": {"mine": "My model"}}).get_json()
    assert named["model_names"] == {"mine": "My model"}
    models = {m["id"]: m["name"] for m in client.get("/api/v1/models").get_json()["models"]}
    assert models["keyed/mine"] == "My model"
    result = client.post(f"/api/v1/providers/{custom['id']}/discover").get_json()
    assert result["discovery"]["code"] == "discovery_unsupported" and result["discovered_models"] is None


def test_model_names_are_validated(client, user):
    config_id = create(client, api_key=KEY, enabled_models=["k1"])["id"]
    for bad in ({"k1": 5}, {"k1": "x" * 101}, {"k1": "two\nlines"}, {"k9": "Unknown"}, ["k1"]):
        assert_error(client.put(f"/api/v1/providers/{config_id}", {"model_names": bad}), 400)
    assert client.get(f"/api/v1/providers/{config_id}").get_json()["model_names"] == {}
    # Names of models no longer offered are dropped with them.
    client.put(f"/api/v1/providers/{config_id}", {"enabled_models": ["k1", "k3"], "model_names": {"k3": "Three"}})
    assert client.put(f"/api/v1/providers/{config_id}", {"enabled_models": ["k1"]}).get_json()["model_names"] == {}
