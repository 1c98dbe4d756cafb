"""Accounts: registration, sign-in, sessions, roles, disabled users, rate limits, audit rows
(and the client address they record)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import AuditLog, User
from bestchat.services import accounts
from bestchat.testing.client import assert_error

PASSWORD = "correct horse battery"


def audit_actions(app) -> list[str]:
    with app.app_context():
        return [row.action for row in db.session.scalars(select(AuditLog).order_by(AuditLog.created_at))]


def test_register_returns_user_without_secrets(client):
    response = client.post("/api/v1/auth/register", {"email": "Carol@Example.com", "password": PASSWORD})
    assert response.status_code == 201
    user = response.get_json()["user"]
    assert user["email"] == "carol@example.com"
    assert user["role"] == "user"
    assert "password" not in response.get_data(as_text=True)
    assert "password_hash" not in user


def test_password_is_hashed_with_a_modern_kdf(client, app):
    client.post("/api/v1/auth/register", {"email": "dan@example.com", "password": PASSWORD})
    with app.app_context():
        stored = db.session.scalar(select(User.password_hash).where(User.email == "dan@example.com"))
    assert stored.startswith("scrypt:")
    assert PASSWORD not in stored


@pytest.mark.parametrize("body, status, code", [
    ({"email": "x@example.com"}, 400, "missing_field"),
    ({"password": PASSWORD}, 400, "missing_field"),
    ({"email": "x@example.com", "password": ""}, 400, "missing_field"),
    ({"email": "x@example.com", "password": "short"}, 400, "weak_password"),
    ({"email": "x@example.com", "password": "password1"}, 400, "weak_password"),
    ({"email": "x@example.com", "password": "aaaaaaaaaaaa"}, 400, "weak_password"),
    ({"email": "not-an-email", "password": PASSWORD}, 400, "invalid_field"),
    ({"email": 42, "password": PASSWORD}, 400, "invalid_field"),
    ({"email": "x@example.com", "password": ["a", "list"]}, 400, "invalid_field"),
])
def test_register_rejects_bad_input_and_creates_nothing(client, app, body, status, code):
    assert_error(client.post("/api/v1/auth/register", body), status, code)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "x@example.com")) is None


def test_register_rejects_malformed_json(client):
    response = client.request("POST", "/api/v1/auth/register", data=b"{not json",
                              headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_json")
    assert_error(client.post("/api/v1/auth/register", ["a", "list"]), 400, "invalid_json")


def test_duplicate_email_is_a_conflict(client):
    client.post("/api/v1/auth/register", {"email": "eve@example.com", "password": PASSWORD})
    response = client.post("/api/v1/auth/register", {"email": "EVE@example.com", "password": PASSWORD})
    assert_error(response, 409, "email_taken")


def test_registration_can_be_closed(client, app):
    app.config["REGISTRATION"] = "closed"
    assert_error(client.post("/api/v1/auth/register", {"email": "f@example.com", "password": PASSWORD}),
                 403, "registration_closed")


def test_login_sets_session_and_logout_ends_it(client):
    client.post("/api/v1/auth/register", {"email": "gina@example.com", "password": PASSWORD})
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")
    client.login("gina@example.com", PASSWORD)
    me = client.get("/api/v1/me").get_json()
    assert me["user"]["email"] == "gina@example.com" and me["auth"] == "session"
    assert client.post("/api/v1/auth/logout").status_code == 200
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")


def test_wrong_password_and_unknown_email_look_the_same(client, app):
    client.post("/api/v1/auth/register", {"email": "hal@example.com", "password": PASSWORD})
    wrong = assert_error(client.post("/api/v1/auth/login", {"email": "hal@example.com", "password": "nope nope"}),
                         401, "invalid_credentials")
    unknown = assert_error(client.post("/api/v1/auth/login", {"email": "who@example.com", "password": "nope nope"}),
                           401, "invalid_credentials")
    assert wrong == unknown
    assert audit_actions(app).count("login.failure") == 2


def test_login_success_is_audited(client, app):
    client.signup("ivy@example.com", PASSWORD)
    assert "login.success" in audit_actions(app)


def test_disabled_user_cannot_log_in_or_keep_a_session(client, app):
    user = client.signup("jay@example.com", PASSWORD)
    with app.app_context():
        accounts.set_disabled(None, db.session.get(User, __import__("uuid").UUID(user["id"])), True)
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")
    assert_error(client.post("/api/v1/auth/login", {"email": "jay@example.com", "password": PASSWORD}),
                 403, "account_disabled")
    assert "user.disabled" in audit_actions(app)


def test_role_changes_are_audited(app, client):
    client.post("/api/v1/auth/register", {"email": "kim@example.com", "password": PASSWORD})
    with app.app_context():
        kim = accounts.find_by_email("kim@example.com")
        accounts.set_role(None, kim, "admin")
        assert kim.is_admin
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "user.role_changed"))
        assert row.details == {"old": "user", "new": "admin"}


def audit_addresses(app) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.execute(select(AuditLog.action, AuditLog.ip).order_by(AuditLog.created_at))
        return [tuple(row) for row in rows]


def test_audit_rows_of_a_request_carry_the_clients_address(client, app):
    client.post("/api/v1/auth/register", {"email": "lou@example.com", "password": PASSWORD},
                environ_overrides={"REMOTE_ADDR": "192.0.2.31"})
    client.post("/api/v1/auth/login", {"email": "lou@example.com", "password": "wrong password"},
                environ_overrides={"REMOTE_ADDR": "198.51.100.32"})
    assert audit_addresses(app) == [("user.registered", "192.0.2.31"), ("login.failure", "198.51.100.32")]


def test_audit_rows_made_outside_a_request_have_no_address(client, app):
    client.post("/api/v1/auth/register", {"email": "max@example.com", "password": PASSWORD},
                environ_overrides={"REMOTE_ADDR": "192.0.2.33"})
    with app.app_context():  # after that request, in no request: its address is not reused
        accounts.set_role(None, accounts.find_by_email("max@example.com"), "admin")
        db.session.commit()
    assert audit_addresses(app) == [("user.registered", "192.0.2.33"), ("user.role_changed", None)]


class TestAuditBehindAProxy:
    @pytest.fixture
    def app_config(self):
        return {"TRUSTED_PROXY_COUNT": 1}

    def test_the_address_is_the_one_the_trusted_proxy_saw(self, client, app):
        client.post("/api/v1/auth/register", {"email": "ned@example.com", "password": PASSWORD},
                    headers={"X-Forwarded-For": "203.0.113.34"}, environ_overrides={"REMOTE_ADDR": "10.0.0.2"})
        assert audit_addresses(app) == [("user.registered", "203.0.113.34")]


class TestRateLimits:
    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_LOGIN_PER_IP": "5/60", "RATELIMIT_LOGIN_PER_ACCOUNT": "3/300",
                "RATELIMIT_REGISTER_PER_IP": "2/3600"}

    def test_login_is_limited_per_account_with_retry_after(self, client):
        body = {"email": "lee@example.com", "password": "wrong password"}
        for _ in range(3):
            assert client.post("/api/v1/auth/login", body).status_code == 401
        response = client.post("/api/v1/auth/login", body)
        assert_error(response, 429, "rate_limited")
        assert 0 < int(response.headers["Retry-After"]) <= 300
        # Another account from the same IP is still allowed (until the per-IP limit).
        assert client.post("/api/v1/auth/login", {"email": "other@example.com", "password": "x"}).status_code == 401

    def test_login_is_limited_per_ip(self, client):
        for i in range(5):
            client.post("/api/v1/auth/login", {"email": f"u{i}@example.com", "password": "wrong password"})
        response = client.post("/api/v1/auth/login", {"email": "u9@example.com", "password": "wrong password"})
        assert_error(response, 429, "rate_limited")
        assert int(response.headers["Retry-After"]) <= 60

    def test_register_is_limited_per_ip(self, client):
        for i in range(2):
            client.post("/api/v1/auth/register", {"email": f"r{i}@example.com", "password": PASSWORD})
        response = client.post("/api/v1/auth/register", {"email": "r9@example.com", "password": PASSWORD})
        assert_error(response, 429, "rate_limited")
        assert "Retry-After" in response.headers

    def test_limits_use_redis_when_configured(self, client, app, backend):
        if backend != "production":
            pytest.skip("Redis-backed limits need BESTCHAT_TEST_REDIS_URL")
        from bestchat.redis_client import get_redis

        client.post("/api/v1/auth/login", {"email": "m@example.com", "password": "wrong password"})
        assert get_redis(app).keys("bestchat:rl:*")
