"""The console's users page: access control of every page and POST, search and filters,
creating an account, changing its role, disabling, resetting the password (sessions and API
tokens end) and deleting it (the user's own cascade), each persisted and audit-logged, with no
secret in any page."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import ApiToken, AuditLog, Conversation, Group, GroupMember, User
from bestchat.testing.client import Client, assert_error
from tests.admin_helpers import ADMIN_EMAIL, PASSWORD, form_post, load, sign_up, user_id


def audit_rows(app, action: str) -> list[AuditLog]:
    with app.app_context():
        rows = db.session.scalars(select(AuditLog).where(AuditLog.action == action)).all()
        db.session.expunge_all()
        return rows


@pytest.fixture
def bob(app) -> Client:
    return sign_up(app, "bob@example.com", display_name="Bob Builder")


PAGES = ["/admin/users/", "/admin/users/new-user/", "/admin/users/invite/", "/admin/users/manage/?id={id}",
         "/admin/users/manage/delete/?id={id}"]
POSTS = ["/admin/users/new-user/", "/admin/users/invite/", "/admin/users/manage/role/?id={id}",
         "/admin/users/manage/disable/?id={id}", "/admin/users/manage/enable/?id={id}",
         "/admin/users/manage/reset-password/?id={id}", "/admin/users/manage/delete/?id={id}"]


@pytest.mark.parametrize("page", PAGES)
def test_pages_are_for_admins_only(app, admin, bob, page):
    path = page.format(id=user_id(app, "bob@example.com"))
    anonymous = Client(app).http.get(path)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login?next=/admin/users/")
    assert bob.http.get(path).status_code == 403
    assert admin.http.get(path).status_code == 200


@pytest.mark.parametrize("post", POSTS)
def test_posts_need_an_admin_and_the_csrf_token(app, admin, bob, post):
    bob_id = user_id(app, "bob@example.com")
    path = post.format(id=bob_id)
    data = {"email": "new@example.com", "role": "admin", "confirm_email": "bob@example.com"}
    before = load(app, "bob@example.com")
    assert Client(app).http.post(path, data=data).status_code == 302
    assert form_post(bob, path, data).status_code == 403
    assert form_post(admin, path, data, csrf=False).status_code == 403
    after = load(app, "bob@example.com")
    assert (after.role, after.disabled, after.password_hash) == (before.role, before.disabled, before.password_hash)
    assert load(app, "new@example.com") is None
    assert audit_rows(app, "invite.created") == []


@pytest.mark.parametrize("path", ["/admin/users/manage/?id={}", "/admin/users/manage/delete/?id={}",
                                  "/admin/users/edit/?id={}"])
@pytest.mark.parametrize("bad", ["nope", str(uuid.uuid4())])
def test_unknown_or_malformed_ids_are_404(admin, path, bad):
    assert admin.http.get(path.format(bad)).status_code == 404
    assert form_post(admin, "/admin/users/manage/disable/?id=" + bad).status_code == 404


def test_search_by_name_and_filter_by_role_and_group(app, admin, bob):
    sign_up(app, "carol@example.com", display_name="Carol")
    with app.app_context():
        group = Group(name="Research")
        db.session.add(group)
        db.session.flush()
        db.session.add(GroupMember(group_id=group.id, user_id=user_id(app, "carol@example.com")))
        db.session.commit()
        group_id = group.id
    found = admin.http.get("/admin/users/?search=builder").get_data(as_text=True)
    assert "bob@example.com" in found and "carol@example.com" not in found
    admins = admin.http.get("/admin/users/?flt0_role_equals=admin").get_data(as_text=True)
    assert ADMIN_EMAIL in admins and "bob@example.com" not in admins
    listing = admin.http.get("/admin/users/").get_data(as_text=True)
    assert "Research" in listing  # the group filter offers the groups that exist
    members = admin.http.get(f"/admin/users/?flt0_group_is_member_of={group_id}").get_data(as_text=True)
    assert "carol@example.com" in members and "bob@example.com" not in members


def test_create_a_user_with_a_generated_password_shown_once(app, admin):
    response = form_post(admin, "/admin/users/new-user/",
                         {"email": "Dave@Example.com", "display_name": "Dave", "role": "user", "password": ""})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    password = re.search(r'<code id="new-password">([^<]+)</code>', response.get_data(as_text=True)).group(1)
    Client(app).login("dave@example.com", password)
    dave = load(app, "dave@example.com")
    assert (dave.display_name, dave.role) == ("Dave", "user")
    [row] = audit_rows(app, "user.created")
    assert row.actor_id == user_id(app, ADMIN_EMAIL) and row.target_id == str(dave.id)
    assert password not in str(row.details)


def test_create_a_user_with_a_given_password_does_not_echo_it(app, admin):
    response = form_post(admin, "/admin/users/new-user/",
                         {"email": "erin@example.com", "role": "admin", "password": "another fine phrase"})
    assert response.status_code == 200
    assert "another fine phrase" not in response.get_data(as_text=True)
    assert Client(app).login("erin@example.com", "another fine phrase")["role"] == "admin"


@pytest.mark.parametrize("fields, status, message", [
    ({"email": "not-an-email"}, 400, "not a valid email"),
    ({"email": "bob@example.com"}, 409, "already exists"),
    ({"email": "fred@example.com", "password": "short"}, 400, "at least"),
    ({"email": "fred@example.com", "role": "root"}, 400, "role must be"),
])
def test_create_refuses_bad_input_and_creates_nothing(app, admin, bob, fields, status, message):
    response = form_post(admin, "/admin/users/new-user/", fields)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "fred@example.com")) is None
    assert audit_rows(app, "user.created") == []


def test_change_role_persists_and_is_audited(app, admin, bob):
    bob_id = user_id(app, "bob@example.com")
    response = form_post(admin, f"/admin/users/manage/role/?id={bob_id}", {"role": "admin"})
    assert response.status_code == 302
    assert load(app, "bob@example.com").role == "admin"
    [row] = audit_rows(app, "user.role_changed")
    assert row.details == {"old": "user", "new": "admin"} and row.actor_id == user_id(app, ADMIN_EMAIL)
    page = admin.http.get(f"/admin/users/manage/?id={bob_id}").get_data(as_text=True)
    assert "Role set to admin." in page


def test_change_role_refuses_an_unknown_role(app, admin, bob):
    bob_id = user_id(app, "bob@example.com")
    response = form_post(admin, f"/admin/users/manage/role/?id={bob_id}", {"role": "owner"})
    assert response.status_code == 400 and "role must be" in response.get_data(as_text=True)
    assert load(app, "bob@example.com").role == "user"


def test_disable_ends_the_session_and_enable_lets_them_back(app, admin, bob):
    bob_id = user_id(app, "bob@example.com")
    assert bob.get("/api/v1/me").status_code == 200
    assert form_post(admin, f"/admin/users/manage/disable/?id={bob_id}").status_code == 302
    assert load(app, "bob@example.com").disabled is True
    assert bob.get("/api/v1/me").status_code == 401
    assert_error(Client(app).post("/api/v1/auth/login", {"email": "bob@example.com", "password": PASSWORD}),
                 403, "account_disabled")
    assert form_post(admin, f"/admin/users/manage/enable/?id={bob_id}").status_code == 302
    Client(app).login("bob@example.com", PASSWORD)
    assert [r.action for r in audit_rows(app, "user.disabled") + audit_rows(app, "user.enabled")] == \
        ["user.disabled", "user.enabled"]


def test_reset_password_ends_sessions_and_revokes_api_tokens(app, admin, bob):
    bob_id = user_id(app, "bob@example.com")
    token = bob.post("/api/v1/tokens", {"name": "cli"}).get_json()["token"]
    bearer = Client(app)
    bearer.bearer = token
    assert bearer.get("/api/v1/me").status_code == 200
    response = form_post(admin, f"/admin/users/manage/reset-password/?id={bob_id}")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    password = re.search(r'<code id="new-password">([^<]+)</code>', response.get_data(as_text=True)).group(1)
    assert_error(bob.get("/api/v1/me"), 401)
    assert_error(bearer.get("/api/v1/me"), 401, "invalid_token")
    assert_error(Client(app).post("/api/v1/auth/login", {"email": "bob@example.com", "password": PASSWORD}),
                 401, "invalid_credentials")
    Client(app).login("bob@example.com", password)
    [row] = audit_rows(app, "user.password_reset")
    assert row.target_id == str(bob_id) and row.details == {"tokens_revoked": 1}
    with app.app_context():
        assert db.session.scalar(select(ApiToken.revoked_at)) is not None


def test_delete_asks_for_confirmation_then_cascades(app, admin, bob):
    bob_id = user_id(app, "bob@example.com")
    assert bob.post("/api/v1/conversations", {"title": "mine"}).status_code == 201
    bob.post("/api/v1/tokens", {"name": "cli"})
    with app.app_context():
        group = Group(name="Team")
        db.session.add(group)
        db.session.flush()
        db.session.add(GroupMember(group_id=group.id, user_id=bob_id))
        db.session.commit()
    page = admin.http.get(f"/admin/users/manage/delete/?id={bob_id}").get_data(as_text=True)
    assert "cannot be undone" in page
    wrong = form_post(admin, f"/admin/users/manage/delete/?id={bob_id}", {"confirm_email": "someone@example.com"})
    assert wrong.status_code == 400 and load(app, "bob@example.com") is not None
    done = form_post(admin, f"/admin/users/manage/delete/?id={bob_id}", {"confirm_email": "bob@example.com"})
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(User, bob_id) is None
        assert db.session.scalar(select(Conversation).where(Conversation.user_id == bob_id)) is None
        assert db.session.scalar(select(ApiToken).where(ApiToken.user_id == bob_id)) is None
        assert db.session.scalar(select(GroupMember).where(GroupMember.user_id == bob_id)) is None
    [row] = audit_rows(app, "user.deleted")
    assert row.actor_id == user_id(app, ADMIN_EMAIL) and row.target_id == str(bob_id)
    assert_error(bob.get("/api/v1/me"), 401)
    assert "deleted" in admin.http.get("/admin/users/").get_data(as_text=True)  # the flash message


def test_no_password_hash_or_token_in_any_users_page(app, admin, bob):
    bob_id = user_id(app, "bob@example.com")
    token = bob.post("/api/v1/tokens", {"name": "cli"}).get_json()["token"]
    invite = form_post(admin, "/admin/users/invite/", {"role": "user"}).get_data(as_text=True)
    link_token = re.search(r"invite=([A-Za-z0-9_-]+)", invite).group(1)
    with app.app_context():
        hashes = [u.password_hash for u in db.session.scalars(select(User))]
        token_hash = db.session.scalar(select(ApiToken.token_hash))
    for page in ["/admin/users/", "/admin/users/new-user/", "/admin/users/invite/",
                 f"/admin/users/manage/?id={bob_id}", f"/admin/users/manage/delete/?id={bob_id}",
                 f"/admin/users/edit/?id={bob_id}", "/admin/audit_log/"]:
        html = admin.http.get(page).get_data(as_text=True)
        for secret in [*hashes, token, token_hash, link_token]:
            assert secret not in html, (page, secret[:12])


def test_the_edit_form_renames_through_the_service(app, admin, bob):
    bob_id = user_id(app, "bob@example.com")
    form = admin.http.get(f"/admin/users/edit/?id={bob_id}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    response = admin.http.post(f"/admin/users/edit/?id={bob_id}",
                               data={"csrf_token": csrf, "display_name": "Robert", "role": "user"})
    assert response.status_code == 302
    assert load(app, "bob@example.com").display_name == "Robert"
    [row] = audit_rows(app, "user.renamed")
    assert row.details == {"old": "Bob Builder", "new": "Robert"} and row.actor_id == user_id(app, ADMIN_EMAIL)
