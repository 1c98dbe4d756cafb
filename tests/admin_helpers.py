"""Helpers of the admin console tests: a signed-in admin, a signed-in user, form posts with the
session's CSRF token, and the access-control checks every console page and POST must pass."""

from __future__ import annotations

from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import User
from bestchat.services import accounts
from bestchat.testing.client import Client

PASSWORD = "correct horse battery"
ADMIN_EMAIL = "root@example.com"


def sign_in_admin(app, email: str = ADMIN_EMAIL) -> Client:
    with app.app_context():
        accounts.register(email, PASSWORD, role="admin", display_name="Root")
    admin = Client(app)
    admin.login(email, PASSWORD)
    return admin


def sign_up(app, email: str, display_name: str | None = None) -> Client:
    """A registered, signed-in user (a fresh client)."""
    with app.app_context():
        accounts.register(email, PASSWORD, display_name=display_name)
    client = Client(app)
    client.login(email, PASSWORD)
    return client


def user_id(app, email: str):
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def load(app, email: str) -> User | None:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        if user is not None:
            db.session.expunge(user)
        return user


def form_post(client: Client, path: str, data: dict | None = None, *, csrf: bool = True):
    """A console form's POST (form-encoded), with the session's CSRF token unless told not to."""
    fields = dict(data or {})
    if csrf:
        fields["csrf_token"] = client.csrf
    return client.http.post(path, data=fields)
