"""Personal API tokens: shown once, stored hashed, Bearer auth, revocation, last-used time."""

from __future__ import annotations

from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import ApiToken, AuditLog, User
from bestchat.services import accounts
from bestchat.testing.client import assert_error


def make_token(client, name="laptop") -> dict:
    response = client.post("/api/v1/tokens", {"name": name})
    assert response.status_code == 201
    return response.get_json()


def test_token_is_shown_once_and_stored_hashed(client, user, app):
    created = make_token(client)
    plaintext = created["token"]
    assert plaintext.startswith("bc_") and len(plaintext) > 30
    listed = client.get("/api/v1/tokens").get_json()["tokens"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert plaintext not in client.get("/api/v1/tokens").get_data(as_text=True)
    assert plaintext not in client.get(f"/api/v1/tokens/{created['id']}").get_data(as_text=True)
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert plaintext not in (row.token_hash, row.prefix) and len(row.token_hash) == 64


def test_bearer_token_authenticates_without_csrf(client, user):
    plaintext = make_token(client)["token"]
    api = client.new()
    api.bearer = plaintext
    me = api.get("/api/v1/me").get_json()
    assert me["user"]["email"] == user["email"] and me["auth"] == "token"
    assert "csrf_token" not in me
    # An unsafe request with a Bearer token needs no CSRF header.
    assert api.post("/api/v1/tokens", {"name": "ci"}).status_code == 201


def test_last_used_time_is_recorded(client, user):
    created = make_token(client)
    assert created["last_used_at"] is None
    api = client.new()
    api.bearer = created["token"]
    api.get("/api/v1/me")
    assert client.get(f"/api/v1/tokens/{created['id']}").get_json()["last_used_at"] is not None


def test_revoked_token_stops_working_and_is_audited(client, user, app):
    created = make_token(client)
    api = client.new()
    api.bearer = created["token"]
    assert api.get("/api/v1/me").status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    assert_error(api.get("/api/v1/me"), 401, "invalid_token")
    with app.app_context():
        actions = set(db.session.scalars(select(AuditLog.action)))
    assert {"token.created", "token.revoked"} <= actions


def test_unknown_and_malformed_tokens_are_401(client, user):
    api = client.new()
    api.bearer = "bc_not-a-real-token"
    assert_error(api.get("/api/v1/me"), 401, "invalid_token")
    response = client.new().get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert_error(response, 401, "invalid_token")


def test_disabled_user_token_is_refused(client, user, app):
    plaintext = make_token(client)["token"]
    with app.app_context():
        accounts.set_disabled(None, db.session.scalar(select(User)), True)
    api = client.new()
    api.bearer = plaintext
    assert_error(api.get("/api/v1/me"), 403, "account_disabled")


def test_other_users_tokens_are_not_found(client, user):
    created = make_token(client)
    other = client.new()
    other.signup("mallory@example.com", "correct horse battery")
    assert_error(other.get(f"/api/v1/tokens/{created['id']}"), 404, "not_found")
    assert_error(other.delete(f"/api/v1/tokens/{created['id']}"), 404, "not_found")
    assert_error(other.delete("/api/v1/tokens/not-a-uuid"), 404, "not_found")
    assert other.get("/api/v1/tokens").get_json()["tokens"] == []
    # The owner's token still works.
    api = client.new()
    api.bearer = created["token"]
    assert api.get("/api/v1/me").status_code == 200


def test_token_name_is_required(client, user):
    assert_error(client.post("/api/v1/tokens", {}), 400, "missing_field")
    assert_error(client.post("/api/v1/tokens", {"name": 3}), 400, "invalid_field")
    assert client.get("/api/v1/tokens").get_json()["tokens"] == []


def test_cookie_requests_need_csrf(client, user):
    response = client.post("/api/v1/tokens", {"name": "x"}, headers={"X-CSRF-Token": "wrong"})
    assert_error(response, 403, "csrf_failed")
    client.csrf = None
    assert_error(client.post("/api/v1/tokens", {"name": "x"}), 403, "csrf_failed")
    # Safe methods need none.
    assert client.get("/api/v1/tokens").status_code == 200
