"""GET /api/v1/me/export and DELETE /api/v1/me: everything the user owns, out or gone."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.models import (
    ApiToken, AuditLog, Conversation, FileUpload, Message, ProviderConfig, UsageLog, User,
)
from bestchat.testing.client import assert_error

PASSWORD = "correct horse battery"


def seed_owned_rows(app, user_id: str) -> None:
    """One row of each kind the user can own, written directly (the APIs come in later issues)."""
    with app.app_context():
        uid = uuid.UUID(user_id)
        conversation = Conversation(user_id=uid, title="Trip plans")
        db.session.add(conversation)
        db.session.flush()
        message = Message(conversation_id=conversation.id, role="user", content="Where to?")
        db.session.add(message)
        db.session.flush()
        db.session.add_all([
            Message(conversation_id=conversation.id, role="assistant", content="Lisbon.", parent_id=message.id),
            FileUpload(user_id=uid, name="map.png", size=10, sha256="0" * 64, mime="image/png",
                       storage_key=str(uuid.uuid4())),
            ProviderConfig(user_id=uid, provider="openai", name="mine", key_last4="abcd"),
            UsageLog(user_id=uid, conversation_id=conversation.id, message_id=message.id,
                     provider="demo", model="demo", prompt_tokens=3, completion_tokens=5),
        ])
        db.session.commit()


def count(app, model, user_id=None) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        return db.session.scalar(query)


def test_export_holds_everything_the_user_owns(client, user, app):
    seed_owned_rows(app, user["id"])
    client.post("/api/v1/tokens", {"name": "cli"})
    response = client.get("/api/v1/me/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = response.get_json()
    assert data["account"]["email"] == user["email"]
    assert [c["title"] for c in data["conversations"]] == ["Trip plans"]
    assert [m["content"] for m in data["conversations"][0]["messages"]] == ["Where to?", "Lisbon."]
    assert data["uploads"][0]["name"] == "map.png"
    assert data["provider_configs"][0]["key_last4"] == "abcd"
    assert data["usage"][0]["completion_tokens"] == 5
    assert data["api_tokens"][0]["name"] == "cli"
    text = response.get_data(as_text=True)
    assert "password_hash" not in text and "token_hash" not in text


def test_export_contains_nothing_of_other_users(client, user, app):
    seed_owned_rows(app, user["id"])
    other = client.new()
    other.signup("other@example.com", PASSWORD)
    data = other.get("/api/v1/me/export").get_json()
    assert data["conversations"] == [] and data["uploads"] == [] and data["usage"] == []


def test_delete_me_needs_the_password(client, user, app):
    assert_error(client.delete("/api/v1/me", {}), 400, "missing_field")
    assert_error(client.delete("/api/v1/me", {"password": "wrong password"}), 403, "invalid_password")
    assert count(app, User) == 1


def test_delete_me_removes_everything_owned_and_only_that(client, user, app):
    other = client.new()
    other_user = other.signup("other@example.com", PASSWORD)
    seed_owned_rows(app, user["id"])
    seed_owned_rows(app, other_user["id"])
    client.post("/api/v1/tokens", {"name": "cli"})

    assert client.delete("/api/v1/me", {"password": PASSWORD}).status_code == 204

    assert count(app, User) == 1
    for model, remaining in [(Conversation, 1), (Message, 2), (FileUpload, 1), (ProviderConfig, 1),
                             (UsageLog, 1), (ApiToken, 0)]:
        assert count(app, model) == remaining, model.__name__
    assert_error(client.get("/api/v1/me"), 401)
    assert_error(client.post("/api/v1/auth/login", {"email": user["email"], "password": PASSWORD}), 401)
    with app.app_context():
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "user.deleted")) is not None
    assert other.get("/api/v1/me/export").get_json()["conversations"][0]["title"] == "Trip plans"


def test_delete_me_with_a_bearer_token(client, user, app):
    plaintext = client.post("/api/v1/tokens", {"name": "cli"}).get_json()["token"]
    api = client.new()
    api.bearer = plaintext
    assert api.delete("/api/v1/me", {"password": PASSWORD}).status_code == 204
    assert_error(api.get("/api/v1/me"), 401, "invalid_token")
