"""The admin console: admin-only views, the plugins page (failed plugins shown with their
error), users without password hashes and with audited role changes, a read-only audit log,
and views added by plugins."""

from __future__ import annotations

import re
import sys

import pytest
from sqlalchemy import select

from bestchat import create_app, plugins
from bestchat.admin.base import SecureView
from bestchat.extensions import db
from bestchat.hookspecs import hookimpl
from bestchat.models import AuditLog, User
from bestchat.services import accounts
from bestchat.testing.client import Client
from bestchat.testing.plugins import plugin_registered, write_distribution
from bestchat.testing.pytest_plugin import make_config
from flask_admin import expose

PASSWORD = "correct horse battery"


@pytest.fixture
def broken_dist(tmp_path, monkeypatch):
    directory = tmp_path / "site"
    write_distribution(directory, "bestchat-broken", "bestchat_broken_admin", 'raise ImportError("nope")\n')
    monkeypatch.syspath_prepend(str(directory))
    plugins.unload_plugins()
    try:
        yield
    finally:
        plugins.unload_plugins()
        sys.modules.pop("bestchat_broken_admin", None)


def sign_in_admin(app) -> Client:
    with app.app_context():
        accounts.register("root@example.com", PASSWORD, role="admin")
    admin = Client(app)
    admin.login("root@example.com", PASSWORD)
    return admin


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/admin/plugins/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/admin/plugins/"


@pytest.mark.parametrize("path", ["/admin/", "/admin/plugins/", "/admin/users/", "/admin/audit_log/"])
def test_non_admins_are_refused(client, user, path):
    assert client.get(path).status_code == 403


def test_admin_sees_plugins_with_the_failed_one_and_its_error(broken_dist, app):
    admin = sign_in_admin(app)
    assert admin.get("/admin/").status_code == 200
    page = admin.get("/admin/plugins/").get_data(as_text=True)
    row = re.search(r"<tr>\s*<td>bestchat-broken</td>.*?</tr>", page, re.DOTALL).group(0)
    assert "failed" in row and "ImportError: nope" in row
    assert re.search(r"<td>bestchat-demo</td>.*?loaded", page, re.DOTALL)


def test_users_view_hides_password_hashes_and_audits_role_changes(app, client, user):
    admin = sign_in_admin(app)
    with app.app_context():
        alice = db.session.scalar(select(User).where(User.email == "alice@example.com"))
        alice_id, alice_hash = alice.id, alice.password_hash
    listing = admin.get("/admin/users/").get_data(as_text=True)
    assert "alice@example.com" in listing and alice_hash not in listing
    edit_url = f"/admin/users/edit/?id={alice_id}"
    form = admin.get(edit_url).get_data(as_text=True)
    assert "password" not in form.lower()
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    response = admin.http.post(edit_url, data={"csrf_token": csrf, "display_name": "Alice", "role": "admin"})
    assert response.status_code == 302
    with app.app_context():
        alice = db.session.get(User, alice_id)
        assert (alice.role, alice.display_name) == ("admin", "Alice")
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "user.role_changed"))
        assert entry.target_id == str(alice_id) and entry.details == {"old": "user", "new": "admin"}
        assert entry.actor_id == db.session.scalar(select(User.id).where(User.email == "root@example.com"))


def test_edits_without_csrf_token_are_rejected(app, client, user):
    admin = sign_in_admin(app)
    with app.app_context():
        alice_id = db.session.scalar(select(User.id).where(User.email == "alice@example.com"))
    admin.http.post(f"/admin/users/edit/?id={alice_id}", data={"display_name": "x", "role": "admin"})
    with app.app_context():
        assert db.session.get(User, alice_id).role == "user"


def test_audit_log_is_read_only(app):
    admin = sign_in_admin(app)
    listing = admin.get("/admin/audit_log/").get_data(as_text=True)
    assert "user.registered" in listing
    with app.app_context():
        entry_id = db.session.scalar(select(AuditLog.id))
    for path in ("/admin/audit_log/new/", f"/admin/audit_log/edit/?id={entry_id}"):
        assert admin.get(path).status_code == 302  # Flask-Admin sends disabled actions back to the list
    assert admin.http.post("/admin/audit_log/delete/", data={"id": str(entry_id)}).status_code == 302
    with app.app_context():
        assert db.session.get(AuditLog, entry_id) is not None


def test_plugins_add_admin_views(app, tmp_path):
    class HelloView(SecureView):
        @expose("/")
        def index(self):
            return "hello, admin"

    class Views:
        @hookimpl
        def register_admin_views(self, admin):
            admin.add_view(HelloView(name="Hello", endpoint="hello_admin"))

    with plugin_registered(Views(), "views"):
        second = create_app(make_config("embedded", tmp_path / "second"))
    with second.app_context():
        db.create_all()
    admin = sign_in_admin(second)
    assert admin.get("/admin/hello_admin/").get_data(as_text=True) == "hello, admin"
    assert Client(second).get("/admin/hello_admin/").status_code == 302
