"""One access rule for the whole console, checked on every route under ``/admin`` (the core's
pages and any added later): anonymous visitors go to the sign-in page and come back, signed-in
non-admins and disabled admins never get a page, and an admin's unsafe request without the CSRF
token changes nothing."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.models import Base, User
from bestchat.services import accounts
from bestchat.testing.client import Client
from tests.admin_helpers import sign_in_admin, sign_up

ADMIN = "root@example.com"


def admin_paths(app) -> list[tuple[str, set[str]]]:
    """Every console route (path with placeholders filled, methods), static files excepted."""
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint.endswith(".static"):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", str(uuid.uuid4()))
            for converter in ("string", "uuid", "int", "path"):
                path = path.replace(f"<{converter}:{argument}>", "1" if converter == "int" else str(uuid.uuid4()))
        paths.append((path, set(rule.methods or ()) - {"HEAD", "OPTIONS"}))
    return sorted(paths)


def row_counts(app) -> dict[str, int]:
    with app.app_context():
        return {table.name: db.session.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables}


def test_the_console_has_its_core_pages(app):
    paths = {path for path, _ in admin_paths(app)}
    assert {"/admin/", "/admin/plugins/", "/admin/users/"} <= paths


def test_anonymous_visitors_are_sent_to_sign_in_and_back(app):
    anonymous = Client(app)
    for path, methods in admin_paths(app):
        for method in methods:
            response = anonymous.http.open(path, method=method)
            assert response.status_code == 302, (method, path)
            assert response.headers["Location"].startswith("/login?next="), (method, path)
            if method == "GET" and "?" not in path:
                assert response.headers["Location"] == f"/login?next={quote(path, safe='/')}"


def test_signed_in_users_are_refused_everywhere(app):
    user = sign_up(app, "alice@example.com")
    before = row_counts(app)
    for path, methods in admin_paths(app):
        for method in methods:
            response = user.request(method, path, data={"email": "x@example.com", "name": "x"})
            assert response.status_code == 403, (method, path)
    assert row_counts(app) == before


def test_a_disabled_admin_gets_no_page(app):
    admin = sign_in_admin(app, ADMIN)
    sign_in_admin(app, "second@example.com")
    assert admin.get("/admin/").status_code == 200
    with app.app_context():
        account = db.session.scalar(select(User).where(User.email == ADMIN))
        accounts.set_disabled(None, account, True)
    for path, methods in admin_paths(app):
        if "GET" in methods:
            response = admin.get(path)
            assert response.status_code in (302, 403), path
            assert b"BestChat admin" not in response.data, path


def test_unsafe_requests_without_the_csrf_token_change_nothing(app):
    admin = sign_in_admin(app, ADMIN)
    sign_up(app, "alice@example.com")
    before = row_counts(app)
    for path, methods in admin_paths(app):
        for method in methods - {"GET"}:
            response = admin.http.open(path, method=method, data={"email": "new@example.com", "name": "x",
                                                                   "role": "admin", "id": str(uuid.uuid4())})
            assert response.status_code in (200, 302, 400, 403, 404), (method, path)
            if response.status_code == 200:  # a Flask-Admin form shown again with its CSRF error
                assert b"CSRF" in response.data or b"csrf" in response.data, (method, path)
    assert row_counts(app) == before


@pytest.mark.parametrize("backend", ["embedded"])
def test_every_get_page_renders_for_an_admin(app):
    admin = sign_in_admin(app, ADMIN)
    for path, methods in admin_paths(app):
        if "GET" in methods and "<" not in path:
            response = admin.get(path)
            response.get_data()  # a streamed page (a CSV export) ends its request here
            response.close()
            assert response.status_code < 500, path
