"""Invitations and registration modes: an invite made in the console signs one person up (its
role and group, once, before it expires, for its email only), and REGISTRATION (open, invite,
closed; the legacy REGISTRATION_OPEN=False means closed) decides who may sign up without one,
read at each request."""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bestchat import create_app
from bestchat.errors import DomainError
from bestchat.extensions import db
from bestchat.models import AuditLog, Group, GroupMember, Invite, User
from bestchat.models.base import utcnow
from bestchat.services import invites
from bestchat.settings import ConfigurationError
from bestchat.testing.client import Client, assert_error
from bestchat.web import safe_next
from tests.admin_helpers import PASSWORD, form_post


def register(app, email: str, invite: str | None = None):
    body = {"email": email, "password": PASSWORD}
    if invite is not None:
        body["invite"] = invite
    return Client(app).post("/api/v1/auth/register", body)


def console_invite(admin: Client, **fields) -> str:
    """An invitation made in the console; returns its token (from the link shown once)."""
    response = form_post(admin, "/admin/users/invite/", {"role": "user", **fields})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.headers["Cache-Control"] == "no-store"
    link = re.search(r'<code id="invite-link">([^<]+)</code>', response.get_data(as_text=True)).group(1)
    assert link.startswith("http://localhost/signup?invite=")
    return link.split("invite=")[1]


def test_an_invite_signs_up_once_with_its_role_and_group(app, admin):
    with app.app_context():
        group = Group(name="Team")
        db.session.add(group)
        db.session.commit()
        group_id = group.id
    app.config["REGISTRATION"] = "invite"
    token = console_invite(admin, role="admin", group_id=str(group_id))
    with app.app_context():
        invite = db.session.scalar(select(Invite))
        assert invite.token_hash == hashlib.sha256(token.encode()).hexdigest()  # only the hash is stored
        created = db.session.scalar(select(AuditLog).where(AuditLog.action == "invite.created"))
        assert token not in str(created.details) and invite.token_hash not in str(created.details)
    response = register(app, "newbie@example.com", token)
    assert response.status_code == 201
    assert response.get_json()["user"]["role"] == "admin"
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "newbie@example.com"))
        assert db.session.scalar(select(GroupMember.group_id).where(GroupMember.user_id == user.id)) == group_id
        invite = db.session.scalar(select(Invite))
        assert invite.used_by == user.id and invite.used_at is not None
        assert db.session.scalar(select(AuditLog.action).where(AuditLog.action == "invite.used")) == "invite.used"
    assert_error(register(app, "second@example.com", token), 403, "invite_invalid")
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "second@example.com")) is None


def test_an_expired_or_unknown_invite_is_refused_with_one_code(app, admin):
    token = console_invite(admin)
    with app.app_context():
        db.session.execute(update(Invite).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    expired = assert_error(register(app, "late@example.com", token), 403, "invite_invalid")
    unknown = assert_error(register(app, "late@example.com", "made-up-token"), 403, "invite_invalid")
    assert expired["message"] == unknown["message"]


def test_an_invite_made_for_an_email_works_only_for_it(app, admin):
    token = console_invite(admin, email="Invited@Example.com")
    assert_error(register(app, "other@example.com", token), 403, "invite_invalid")
    assert register(app, "invited@example.com", token).status_code == 201


def test_an_invite_expires_after_invite_days(app, admin):
    app.config["INVITE_DAYS"] = 2
    console_invite(admin)
    with app.app_context():
        invite = db.session.scalar(select(Invite))
        left = invite.expires_at.replace(tzinfo=None) - utcnow().replace(tzinfo=None)
    assert timedelta(days=2) - timedelta(minutes=1) < left <= timedelta(days=2)


def test_console_invite_refuses_bad_input(app, admin):
    response = form_post(admin, "/admin/users/invite/", {"email": "nope", "role": "user"})
    assert response.status_code == 400 and "not a valid email" in response.get_data(as_text=True)
    assert form_post(admin, "/admin/users/invite/", {"role": "owner"}).status_code == 400
    assert form_post(admin, "/admin/users/invite/", {"role": "user", "group_id": "bad"}).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(Invite)) is None


def test_pending_invites_are_listed_and_can_be_revoked(app, admin):
    token = console_invite(admin, email="maybe@example.com")
    page = admin.http.get("/admin/users/invite/").get_data(as_text=True)
    assert "maybe@example.com" in page and token not in page
    with app.app_context():
        invite_id = db.session.scalar(select(Invite.id))
    assert form_post(admin, f"/admin/users/invite/revoke/?id={invite_id}", csrf=False).status_code == 403
    assert form_post(admin, f"/admin/users/invite/revoke/?id={invite_id}").status_code == 302
    assert_error(register(app, "maybe@example.com", token), 403, "invite_invalid")
    assert form_post(admin, f"/admin/users/invite/revoke/?id={invite_id}").status_code == 404


@pytest.mark.parametrize("mode, without_invite", [("open", 201), ("invite", 403), ("closed", 403)])
def test_registration_modes(app, admin, mode, without_invite):
    app.config["REGISTRATION"] = mode  # the console changes it at runtime, so it is read per request
    response = register(app, "walk-in@example.com")
    assert response.status_code == without_invite
    if without_invite == 403:
        assert_error(response, 403, "registration_closed")
    token = console_invite(admin)
    assert register(app, "invited@example.com", token).status_code == 201  # an invite works in every mode


def test_the_shell_tells_the_page_the_mode(app, client):
    for mode in ("open", "invite", "closed"):
        app.config["REGISTRATION"] = mode
        assert f'data-registration="{mode}"' in client.get("/signup").get_data(as_text=True)


def test_legacy_registration_open_false_means_closed(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTCHAT_REGISTRATION_OPEN", "false")
    app = create_app({"INSTANCE_PATH": tmp_path / "i", "ENV_NAME": "testing"})
    assert app.config["REGISTRATION"] == "closed"
    monkeypatch.delenv("BESTCHAT_REGISTRATION_OPEN")
    monkeypatch.setenv("BESTCHAT_REGISTRATION", "invite")
    assert create_app({"INSTANCE_PATH": tmp_path / "j", "ENV_NAME": "testing"}).config["REGISTRATION"] == "invite"
    with pytest.raises(ConfigurationError, match="REGISTRATION must be one of"):
        create_app({"INSTANCE_PATH": tmp_path / "k", "ENV_NAME": "testing", "REGISTRATION": "sometimes"})


def test_two_sign_ups_with_one_invite_one_wins(app, admin):
    token = console_invite(admin)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def sign_up(email: str) -> None:
        with app.app_context():
            barrier.wait()
            try:
                invites.register(token, email, PASSWORD)
                outcomes.append("ok")
            except DomainError as error:
                outcomes.append(error.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sign_up, args=(f"racer{i}@example.com",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["invite_invalid", "ok"]
    with app.app_context():
        emails = set(db.session.scalars(select(User.email).where(User.email.like("racer%"))))
        assert len(emails) == 1
        assert db.session.scalar(select(Invite.used_by)) == db.session.scalar(
            select(User.id).where(User.email.in_(emails)))


@pytest.mark.parametrize("value, expected", [
    ("/admin/users/", "/admin/users/"), ("/admin/audit_log/?flt0_action_equals=x", "/admin/audit_log/?flt0_action_equals=x"),
    ("/settings", "/settings"), (None, "/"), ("", "/"), ("admin", "/"), ("//evil.example/x", "/"),
    ("/\\evil.example", "/"), ("https://evil.example/", "/"), ("javascript:alert(1)", "/"),
    ("/\tadmin", "/"), ("/%2F%2Fevil", "/%2F%2Fevil"),
])
def test_next_accepts_only_paths_on_this_server(value, expected):
    assert safe_next(value) == expected


def test_the_login_page_carries_the_checked_next(client):
    assert 'data-next="/admin/users/"' in client.get("/login?next=/admin/users/").get_data(as_text=True)
    assert 'data-next="/"' in client.get("/login?next=//evil.example/").get_data(as_text=True)
