"""The console's groups page: access control of every page and POST (anonymous, user, admin,
no CSRF token), creating, editing and deleting groups with their model and tool lists, adding
members by email or from a search and removing them, every change in the audit log, bad input
refused with nothing changed, unknown ids 404, and the edits taking effect on the user's models."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from bestchat import plugins
from bestchat.extensions import db
from bestchat.models import AuditLog, Group, GroupMember, User
from bestchat.services import accounts, groups
from bestchat.testing.client import Client
from tests.admin_helpers import sign_in_admin
from tests.test_tool_loop import LoopTools

PASSWORD = "correct horse battery"


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post(admin: Client, path: str, data: dict, *, page: str = "/admin/groups/new"):
    """A form post with the CSRF token of ``page``."""
    token = csrf_of(admin.get(page).get_data(as_text=True))
    return admin.http.post(path, data={"csrf_token": token, **data})


@pytest.fixture
def group_id(app) -> str:
    with app.app_context():
        actor = accounts.register("owner@example.com", PASSWORD, role="admin")
        bob = accounts.register("bob@example.com", PASSWORD)
        group = groups.create_group(actor, name="Staff", models=["demo/demo"])
        groups.add_member(actor, group, bob.email)
        return str(group.id)


def bob_id(app) -> str:
    with app.app_context():
        return str(db.session.scalar(select(User.id).where(User.email == "bob@example.com")))


def pages(group: str, member: str) -> list[tuple[str, str]]:
    return [("GET", "/admin/groups/"), ("GET", "/admin/groups/new"), ("GET", f"/admin/groups/{group}/"),
            ("POST", "/admin/groups/new"), ("POST", f"/admin/groups/{group}/"),
            ("POST", f"/admin/groups/{group}/delete"), ("POST", f"/admin/groups/{group}/members"),
            ("POST", f"/admin/groups/{group}/members/{member}/remove")]


def state(app) -> tuple:
    """Every group and membership, to show that a refused request changed nothing."""
    with app.app_context():
        return (sorted((g.name, str(g.description), str(g.models), str(g.tools)) for g in db.session.scalars(select(Group))),
                sorted((str(m.group_id), str(m.user_id)) for m in db.session.scalars(select(GroupMember))))


# ---- access control -------------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_sign_in_and_back(app, client, group_id):
    for method, path in pages(group_id, bob_id(app)):
        response = client.http.open(path, method=method, data={"name": "x"})
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"] == f"/login?next={path}"


def test_signed_in_users_who_are_not_admins_are_refused(app, client, user, group_id):
    before = state(app)
    for method, path in pages(group_id, bob_id(app)):
        response = client.http.open(path, method=method, data={"name": "x", "csrf_token": client.csrf})
        assert response.status_code == 403, (method, path)
    assert state(app) == before


def test_admins_get_every_page(app, group_id):
    admin = sign_in_admin(app)
    for path in ("/admin/groups/", "/admin/groups/new", f"/admin/groups/{group_id}/",
                 f"/admin/groups/{group_id}/?q=bob"):
        assert admin.get(path).status_code == 200, path


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(app, group_id):
    admin = sign_in_admin(app)
    before = state(app)
    for method, path in pages(group_id, bob_id(app)):
        if method == "POST":
            response = admin.http.post(path, data={"name": "x", "email": "root@example.com"})
            assert response.status_code == 403, path
    assert state(app) == before


def test_unknown_and_malformed_ids_are_404(app, group_id):
    admin = sign_in_admin(app)
    for group in (str(uuid.uuid4()), "not-a-uuid"):
        assert admin.get(f"/admin/groups/{group}/").status_code == 404
        assert post(admin, f"/admin/groups/{group}/delete", {}).status_code == 404
        assert post(admin, f"/admin/groups/{group}/members", {"email": "bob@example.com"}).status_code == 404
    for member in (str(uuid.uuid4()), "nope"):
        assert post(admin, f"/admin/groups/{group_id}/members/{member}/remove", {}).status_code == 404


# ---- the page ---------------------------------------------------------------------------------

def test_the_list_shows_groups_with_their_member_counts(app, group_id):
    admin = sign_in_admin(app)
    page = admin.get("/admin/groups/").get_data(as_text=True)
    row = re.search(r"<tr>\s*<td><a[^>]*>Staff</a></td>.*?</tr>", page, re.DOTALL).group(0)
    assert "demo/demo" in row and '<td class="members">1</td>' in row


def test_create_with_checked_and_typed_models_and_chosen_tools_is_audited(app, client, user):
    plugins.register_plugin(LoopTools(), "test-loop-tools")
    try:
        admin = sign_in_admin(app)
        form = admin.get("/admin/groups/new").get_data(as_text=True)
        assert 'value="demo/demo"' in form and 'name="tools" id="tool-1" value="add"' in form
        response = post(admin, "/admin/groups/new", {
            "name": "Support", "description": "front line", "models_mode": "list", "models": ["demo/demo"],
            "models_extra": "openai/gpt-4o-mini, anthropic/*\n", "tools_mode": "list", "tools": ["add"]})
        assert response.status_code == 302
    finally:
        plugins.unregister_plugin("test-loop-tools")
    with app.app_context():
        group = db.session.scalar(select(Group).where(Group.name == "Support"))
        assert group.description == "front line"
        assert group.models == ["anthropic/*", "demo/demo", "openai/gpt-4o-mini"] and group.tools == ["add"]
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "group.created"))
        assert entry.target_id == str(group.id) and entry.details["models"] == group.models
    assert response.headers["Location"].endswith(f"/admin/groups/{group.id}/")
    page = admin.get(f"/admin/groups/{group.id}/").get_data(as_text=True)
    assert "openai/gpt-4o-mini" in page  # the typed ids come back in the free-entry box


def test_edit_to_all_models_and_tools_is_audited_with_the_change(app, group_id):
    admin = sign_in_admin(app)
    response = post(admin, f"/admin/groups/{group_id}/", {"name": "Staff", "models_mode": "all",
                                                          "tools_mode": "all"})
    assert response.status_code == 302
    with app.app_context():
        group = db.session.get(Group, uuid.UUID(group_id))
        assert group.models is None and group.tools is None
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "group.updated"))
        assert entry.details["changes"] == {"models": {"from": ["demo/demo"], "to": None}}


@pytest.mark.parametrize("data, message", [
    ({"name": ""}, "a group needs a name"),
    ({"name": "Other", "models_mode": "list", "models_extra": "gpt-4o"}, "is not a model id"),
    ({"name": "taken "}, "already exists"),
])
def test_bad_input_is_shown_on_the_form_and_changes_nothing(app, group_id, data, message):
    admin = sign_in_admin(app)
    with app.app_context():
        groups.create_group(db.session.get(User, uuid.UUID(bob_id(app))), name="Taken")
    before = state(app)
    for path in ("/admin/groups/new", f"/admin/groups/{group_id}/"):
        response = post(admin, path, data)
        assert response.status_code == 400, path
        assert message in response.get_data(as_text=True)
        assert state(app) == before


def test_members_are_added_by_email_or_search_and_removed_and_it_takes_effect(app, client, user, group_id):
    admin = sign_in_admin(app)
    assert [m["id"] for m in client.get("/api/v1/models").get_json()["models"]] == ["demo/demo"]
    post(admin, f"/admin/groups/{group_id}/", {"name": "Staff", "models_mode": "list", "models_extra": "keyed/*"})
    found = admin.get(f"/admin/groups/{group_id}/?q=ALICE").get_data(as_text=True)
    results = re.search(r'<table class="table table-sm search-results">.*?</table>', found, re.DOTALL).group(0)
    assert "alice@example.com" in results and "bob@example.com" not in results  # bob is a member already
    response = post(admin, f"/admin/groups/{group_id}/members", {"email": "Alice@Example.com"})
    assert response.status_code == 302
    assert client.get("/api/v1/models").get_json()["models"] == []  # only keyed/*, which is not installed
    page = admin.get(f"/admin/groups/{group_id}/").get_data(as_text=True)
    assert "alice@example.com added to Staff." in page
    unknown = post(admin, f"/admin/groups/{group_id}/members", {"email": "nobody@example.com"})
    assert "no user has the email" in admin.get(unknown.headers["Location"]).get_data(as_text=True)
    alice_id = user["id"]
    assert post(admin, f"/admin/groups/{group_id}/members/{alice_id}/remove", {}).status_code == 302
    assert [m["id"] for m in client.get("/api/v1/models").get_json()["models"]] == ["demo/demo"]
    with app.app_context():
        actions = [(e.action, e.details.get("email")) for e in
                   db.session.scalars(select(AuditLog).where(AuditLog.action.like("group.member%"))
                                      .order_by(AuditLog.created_at))]
    assert actions == [("group.member_added", "bob@example.com"), ("group.member_added", "alice@example.com"),
                       ("group.member_removed", "alice@example.com")]


def test_delete_removes_the_group_and_its_memberships_and_is_audited(app, group_id):
    admin = sign_in_admin(app)
    response = post(admin, f"/admin/groups/{group_id}/delete", {})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/groups/")
    assert state(app) == ([], [])
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "group.deleted"))
        assert entry.details == {"name": "Staff", "members": 1}
    assert "No groups yet" in admin.get("/admin/groups/").get_data(as_text=True)
