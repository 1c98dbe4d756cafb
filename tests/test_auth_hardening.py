"""Sign-in and session hardening (issue 13): login CSRF, sessions that end on sign-out, password
change and disable, remember-me tokens, sign-in throttling that cannot lock the owner out,
socket tickets, the access log, and the security headers of every response.

Real sockets (revocation closing open WebSockets across processes) are in
``tests/integration/test_socket_auth.py``.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta

import gevent
import pytest
from sqlalchemy import select, update

from bestchat import create_app
from bestchat.errors import Unauthorized
from bestchat.extensions import db
from bestchat.models import User
from bestchat.models.base import utcnow
from bestchat.services import accounts
from bestchat.testing.client import assert_error
from bestchat.testing.pytest_plugin import make_config
from tests.socket_client import SocketClient

API = "/api/v1"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse"


def session_cookie(client) -> str | None:
    cookie = client.http.get_cookie("session")
    return cookie.value if cookie else None


def set_cookies(client, **cookies) -> None:
    for name, value in cookies.items():
        client.http.set_cookie(name, value)


def account(app, user_id) -> User:
    return db.session.get(User, uuid.UUID(user_id))


# ---- item 4: login CSRF -------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"Origin": "https://attacker.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
])
def test_cross_site_sign_in_and_sign_up_are_refused(client, headers):
    client.post(f"{API}/auth/register", {"email": "ann@example.com", "password": PASSWORD})
    response = client.post(f"{API}/auth/login", {"email": "ann@example.com", "password": PASSWORD},
                           headers=headers)
    assert_error(response, 403, "cross_site_request")
    assert "session" not in response.headers.get("Set-Cookie", "")
    assert_error(client.get(f"{API}/me"), 401, "unauthorized")
    assert_error(client.post(f"{API}/auth/register", {"email": "bob@example.com", "password": PASSWORD},
                             headers=headers), 403, "cross_site_request")


@pytest.mark.parametrize("headers", [
    {}, {"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Sec-Fetch-Site": "none"},
])
def test_same_origin_and_non_browser_sign_in_work(client, headers):
    assert client.post(f"{API}/auth/register", {"email": "cy@example.com", "password": PASSWORD},
                       headers=headers).status_code == 201
    assert client.post(f"{API}/auth/login", {"email": "cy@example.com", "password": PASSWORD},
                       headers=headers).status_code == 200
    assert client.get(f"{API}/me").status_code == 200


# ---- item 6: sessions ---------------------------------------------------------------------


def test_a_session_cookie_kept_from_before_sign_out_no_longer_works(client):
    client.signup("dee@example.com", PASSWORD)
    kept = session_cookie(client)
    assert client.post(f"{API}/auth/logout").status_code == 200
    set_cookies(client, session=kept)  # the attacker replays the old cookie
    assert_error(client.get(f"{API}/me"), 401, "unauthorized")


def test_sign_out_ends_the_accounts_other_sessions_too(client):
    client.signup("eli@example.com", PASSWORD)
    other = client.new()
    other.login("eli@example.com", PASSWORD)
    client.post(f"{API}/auth/logout")
    assert_error(other.get(f"{API}/me"), 401, "unauthorized")
    other.login("eli@example.com", PASSWORD)  # and a new sign-in works
    assert other.get(f"{API}/me").status_code == 200


def test_a_password_change_ends_every_session_but_keeps_api_tokens(client, app):
    client.signup("fay@example.com", PASSWORD)
    token = client.post(f"{API}/tokens", {"name": "cli"}).get_json()["token"]
    other = client.new()
    other.login("fay@example.com", PASSWORD)
    kept = session_cookie(other)
    assert_error(client.post(f"{API}/me/password", {"current_password": "wrong one!", "new_password": NEW_PASSWORD}),
                 403, "invalid_password")
    assert other.get(f"{API}/me").status_code == 200
    assert client.post(f"{API}/me/password",
                       {"current_password": PASSWORD, "new_password": NEW_PASSWORD}).status_code == 204
    set_cookies(other, session=kept)
    assert_error(other.get(f"{API}/me"), 401, "unauthorized")
    assert_error(client.get(f"{API}/me"), 401, "unauthorized")
    assert_error(other.post(f"{API}/auth/login", {"email": "fay@example.com", "password": PASSWORD}), 401)
    other.login("fay@example.com", NEW_PASSWORD)
    bearer = client.new()
    bearer.bearer = token
    assert bearer.get(f"{API}/me").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(User.session_generation).where(User.email == "fay@example.com")) >= 1


def test_a_session_of_a_disabled_account_stays_ended_when_it_is_enabled_again(client, app):
    user = client.signup("gus@example.com", PASSWORD)
    with app.app_context():
        accounts.set_disabled(None, account(app, user["id"]), True)
        accounts.set_disabled(None, account(app, user["id"]), False)
    assert_error(client.get(f"{API}/me"), 401, "unauthorized")


def test_remember_me_is_a_random_revocable_token_with_safe_cookie_flags(client, app):
    from bestchat.models.users import RememberToken

    client.post(f"{API}/auth/register", {"email": "hu@example.com", "password": PASSWORD})
    first = client.post(f"{API}/auth/login", {"email": "hu@example.com", "password": PASSWORD, "remember": True})
    cookies = first.headers.getlist("Set-Cookie")
    remember = next(c for c in cookies if c.startswith("bestchat_remember="))
    assert "HttpOnly" in remember and "SameSite=Lax" in remember and "Secure" not in remember
    assert not any(c.startswith("remember_token=") for c in cookies)  # Flask-Login's id + signature
    value = client.http.get_cookie("bestchat_remember").value
    assert user_id_not_in(value, first.get_json()["user"]["id"])
    with app.app_context():  # stored hashed only
        assert db.session.scalar(select(RememberToken.token_hash)) != value

    second = client.new()
    second.post(f"{API}/auth/login", {"email": "hu@example.com", "password": PASSWORD, "remember": True})
    assert second.http.get_cookie("bestchat_remember").value != value  # a new token per sign-in

    browser = client.new()  # its session ended (browser restarted): the remember cookie signs it in
    set_cookies(browser, bestchat_remember=value)
    assert browser.get(f"{API}/me").get_json()["auth"] == "session"

    client.csrf = first.get_json()["csrf_token"]
    assert client.post(f"{API}/auth/logout").status_code == 200  # revokes every remember token
    stale = client.new()
    set_cookies(stale, bestchat_remember=value)
    assert_error(stale.get(f"{API}/me"), 401, "unauthorized")


def user_id_not_in(value: str, user_id: str) -> bool:
    return user_id not in value and user_id.replace("-", "") not in value


def test_a_forged_flask_login_remember_cookie_signs_nobody_in(client, app):
    """Flask-Login's remember cookie is the user id plus a signature: the same on every login,
    forever. It is neither set nor accepted."""
    from flask_login.utils import encode_cookie

    user = client.signup("ira@example.com", PASSWORD)
    with app.test_request_context():
        forged = encode_cookie(user["id"])
    browser = client.new()
    set_cookies(browser, remember_token=forged)
    assert_error(browser.get(f"{API}/me"), 401, "unauthorized")


def test_an_expired_remember_token_signs_nobody_in(client, app):
    from bestchat.models.users import RememberToken

    client.post(f"{API}/auth/register", {"email": "ida@example.com", "password": PASSWORD})
    client.post(f"{API}/auth/login", {"email": "ida@example.com", "password": PASSWORD, "remember": True})
    value = client.http.get_cookie("bestchat_remember").value
    with app.app_context():
        db.session.execute(update(RememberToken).values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    browser = client.new()
    set_cookies(browser, bestchat_remember=value)
    assert_error(browser.get(f"{API}/me"), 401, "unauthorized")


def test_cookies_are_secure_over_https(client):
    client.post(f"{API}/auth/register", {"email": "jo@example.com", "password": PASSWORD})
    plain = client.post(f"{API}/auth/login", {"email": "jo@example.com", "password": PASSWORD, "remember": True})
    assert not any("Secure" in c for c in plain.headers.getlist("Set-Cookie"))
    https = client.new()
    response = https.post(f"{API}/auth/login", {"email": "jo@example.com", "password": PASSWORD, "remember": True},
                          base_url="https://localhost")
    cookies = response.headers.getlist("Set-Cookie")
    for name in ("session=", "bestchat_remember=", "bestchat_device="):
        cookie = next(c for c in cookies if c.startswith(name))
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie


# ---- item 8: sign-in throttling -----------------------------------------------------------


class TestSignInThrottling:
    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_LOGIN_PER_IP": "100/60", "RATELIMIT_LOGIN_PER_ACCOUNT": "3/300",
                "RATELIMIT_LOGIN_PER_DEVICE": "3/300"}

    @staticmethod
    def attempt(client, password, ip):
        response = client.post(f"{API}/auth/login", {"email": "admin@example.com", "password": password},
                               environ_overrides={"REMOTE_ADDR": ip})
        if response.status_code == 200:  # (signed in: a later unsafe request needs the CSRF token)
            client.csrf = response.get_json()["csrf_token"]
        return response

    def test_failures_elsewhere_never_refuse_the_owners_known_device_or_address(self, client):
        owner_ip, attacker_ip = "192.0.2.10", "198.51.100.7"
        client.post(f"{API}/auth/register", {"email": "admin@example.com", "password": PASSWORD})
        assert self.attempt(client, PASSWORD, owner_ip).status_code == 200  # device + address now known

        attacker = client.new()
        for _ in range(3):
            assert self.attempt(attacker, "guess guess", attacker_ip).status_code == 401
        refused = self.attempt(attacker, "guess guess", attacker_ip)
        assert_error(refused, 429, "rate_limited")
        assert 0 < int(refused.headers["Retry-After"]) <= 300
        # even the right password from the attacker's side waits: guessing is slowed
        assert_error(self.attempt(attacker, PASSWORD, "203.0.113.9"), 429, "rate_limited")

        assert self.attempt(client, PASSWORD, owner_ip).status_code == 200  # the known browser
        assert self.attempt(client, PASSWORD, "203.0.113.50").status_code == 200  # ... on a new network
        new_browser = client.new()
        assert self.attempt(new_browser, PASSWORD, owner_ip).status_code == 200  # a known address

    def test_a_known_device_is_throttled_by_its_own_failures(self, client):
        ip = "192.0.2.20"
        client.post(f"{API}/auth/register", {"email": "admin@example.com", "password": PASSWORD})
        assert self.attempt(client, PASSWORD, ip).status_code == 200
        for _ in range(3):
            assert self.attempt(client, "typo typo", ip).status_code == 401
        assert_error(self.attempt(client, PASSWORD, ip), 429, "rate_limited")

    def test_a_forged_device_cookie_counts_as_unknown(self, client):
        client.post(f"{API}/auth/register", {"email": "admin@example.com", "password": PASSWORD})
        attacker = client.new()
        set_cookies(attacker, bestchat_device="eyJkIjoieCIsImEiOltdfQ.forged")
        for _ in range(3):
            self.attempt(attacker, "guess guess", "198.51.100.8")
        assert_error(self.attempt(attacker, PASSWORD, "198.51.100.9"), 429, "rate_limited")


# ---- item 5: sockets re-check their credentials -------------------------------------------


@pytest.mark.parametrize("change", ["disable", "role", "delete", "password"])
def test_an_account_change_closes_its_open_sockets_at_once(app, client, change):
    """(In one process; tests/integration/test_socket_auth.py checks it across processes.)"""
    user = client.signup("kai@example.com", PASSWORD)
    with SocketClient(app, user["id"], session=True) as socket:
        with app.app_context():
            target = account(app, user["id"])
            if change == "disable":
                accounts.set_disabled(None, target, True)
            elif change == "role":
                accounts.set_role(None, target, "admin")
            elif change == "delete":
                accounts.delete_account(target, PASSWORD)
            else:
                accounts.set_password(None, target, NEW_PASSWORD)
        frames = socket.frames_until_closed()  # (the re-check runs in its own greenlet)
        assert [(f["type"], f["code"]) for f in frames] == [("error", "unauthorized")]
        assert socket.closed == (1008, "credentials revoked")


def test_a_socket_of_another_account_stays_open(app, client):
    user = client.signup("lou@example.com", PASSWORD)
    other = client.new()
    bystander = other.signup("max@example.com", PASSWORD)
    with SocketClient(app, bystander["id"], session=True) as socket:
        with app.app_context():
            accounts.set_disabled(None, account(app, user["id"]), True)
        gevent.sleep(0.1)
        assert socket.ask({"type": "ping"}) == {"type": "pong"}
        assert socket.closed is None


def test_each_frame_rechecks_a_session_ended_without_a_notice(app, client):
    """A notice can be lost (Redis down): the next command still finds the session ended."""
    user = client.signup("ned@example.com", PASSWORD)
    with SocketClient(app, user["id"], session=True) as socket:
        with app.app_context():  # behind the service's back: no notice
            db.session.execute(update(User).values(session_generation=User.session_generation + 1))
            db.session.commit()
        socket.send({"type": "subscribe", "conversation_id": str(uuid.uuid4())})
        frames = socket.frames_until_closed()
        assert [(f["type"], f["code"]) for f in frames] == [("error", "unauthorized")]
        assert socket.closed == (1008, "credentials revoked")


def test_an_idle_socket_rechecks_its_credentials_periodically(app, client):
    """Without a notice and without a command, the periodic re-check (WS_AUTH_RECHECK) closes it."""
    app.config["WS_AUTH_RECHECK"] = 0.05
    user = client.signup("ora@example.com", PASSWORD)
    with SocketClient(app, user["id"], session=True, idle_wait=0.01) as socket:
        gevent.sleep(0.2)
        assert socket.closed is None  # nothing changed: it stays open
        with app.app_context():  # behind the service's back: no notice
            db.session.execute(update(User).values(session_generation=User.session_generation + 1))
            db.session.commit()
        frames = socket.frames_until_closed()
        assert [(f["type"], f["code"]) for f in frames] == [("error", "unauthorized")]
        assert socket.closed == (1008, "credentials revoked")


# ---- item 9: socket tickets and the access log ----------------------------------------------


def test_a_socket_ticket_is_single_use_and_short_lived(client, app):
    from bestchat.security import tickets

    client.signup("ola@example.com", PASSWORD)
    response = client.post(f"{API}/ws-ticket")
    assert response.status_code == 201
    body = response.get_json()
    assert body["ticket"].startswith("wst_") and body["expires_in"] == app.config["WS_TICKET_TTL"]
    with app.test_request_context():
        user, credentials = tickets.redeem(body["ticket"])
        assert user.email == "ola@example.com" and credentials.session_generation is not None
        with pytest.raises(Unauthorized) as used:
            tickets.redeem(body["ticket"])
        assert used.value.code == "invalid_ticket"


def test_a_ticket_of_a_revoked_token_opens_nothing(client, app):
    from bestchat.security import tickets

    client.signup("pia@example.com", PASSWORD)
    created = client.post(f"{API}/tokens", {"name": "bot"}).get_json()
    bot = client.new()
    bot.bearer = created["token"]
    ticket = bot.post(f"{API}/ws-ticket").get_json()["ticket"]
    assert client.delete(f"{API}/tokens/{created['id']}").status_code == 204
    with app.test_request_context(), pytest.raises(Unauthorized) as refused:
        tickets.redeem(ticket)
    assert refused.value.code == "invalid_ticket"


def test_the_access_log_redacts_tokens_and_tickets():
    from datetime import timedelta as delta

    from gunicorn.config import Config

    from bestchat.accesslog import RedactingLogger

    logger = RedactingLogger(Config())

    class Response:
        status, sent, headers = "101 Switching Protocols", 0, []

    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/ws?token=bc_SECRET1&x=1", "SERVER_PROTOCOL": "HTTP/1.1",
               "QUERY_STRING": "TICKET=wst_SECRET2", "HTTP_REFERER": "http://h/?access_token=SECRET3",
               "PATH_INFO": "/ws"}
    atoms = logger.atoms(Response(), [("Authorization", "Bearer bc_SECRET4")], environ, delta(seconds=1))
    line = json.dumps(atoms)
    assert "SECRET" not in line, line
    assert atoms["r"] == "GET /ws?token=[redacted]&x=1 HTTP/1.1"


def test_serve_runs_gunicorn_with_the_redacting_access_log(tmp_path, monkeypatch):
    app = create_app(make_config("embedded", tmp_path))
    started = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    monkeypatch.setattr(os, "chdir", lambda path: None)
    assert app.test_cli_runner().invoke(args=["serve"]).exit_code == 0
    argv = started[0]
    assert argv[argv.index("--logger-class") + 1] == "bestchat.accesslog.RedactingLogger"


# ---- item 10: headers ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/v1/me", "/api/v1/openapi.json", "/v1/models", "/healthz",
                                  "/admin/", "/admin/users/", "/no/such/page", "/api/v1/nothing"])
def test_every_response_has_the_security_headers(client, path):
    response = client.get(path)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "'unsafe-inline'" not in csp.split(
        "script-src")[1].split(";")[0]


def test_the_admin_console_has_a_nonce_for_its_inline_scripts_and_cannot_be_framed(client, app):
    user = client.signup("root@example.com", PASSWORD)
    with app.app_context():
        accounts.set_role(None, account(app, user["id"]), "admin")
    client.login("root@example.com", PASSWORD)
    response = client.get("/admin/users/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    html = response.get_data(as_text=True)
    assert f'nonce="{nonce}"' in html
    assert client.get("/admin/users/").headers["Content-Security-Policy"] != csp  # a nonce per response


def test_a_secret_key_without_entropy_is_refused_in_production(tmp_path):
    from bestchat.settings import ConfigurationError

    with pytest.raises(ConfigurationError) as refused:
        create_app(make_config("embedded", tmp_path, ENV_NAME="production", SECRET_KEY="x" * 32,
                               ENCRYPTION_KEYS="k"))
    assert "not random enough" in str(refused.value) and "\n" not in str(refused.value)

