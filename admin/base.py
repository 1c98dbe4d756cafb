"""The bases every admin view inherits: one access rule and one CSRF rule for the console.

Anonymous visitors are sent to the sign-in page with ``next`` (and come back to the page they
asked for); signed-in users who are not admins (or whose account is disabled) get 403.
Custom pages (:class:`SecureView`) check the session's CSRF token on every unsafe request: their
forms carry it as a ``csrf_token`` field (``{{ csrf_token() }}`` in templates). Model views use
Flask-Admin's own ``SecureForm`` token instead.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from flask import abort, redirect, request
from flask_admin import AdminIndexView, BaseView
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import SecureForm
from flask_login import current_user
from werkzeug.wrappers import Response

from bestchat.extensions import db
from bestchat.security.csrf import check_csrf

LOGIN_URL = "/login"


def login_redirect() -> Response:
    """To the sign-in page, then back to the page asked for."""
    target = request.full_path.rstrip("?") if request.query_string else request.path
    return redirect(f"{LOGIN_URL}?next={quote(target, safe='/')}")


class AdminOnly:
    """``is_accessible`` for active administrators only; others are refused."""

    def is_accessible(self) -> bool:
        return bool(current_user.is_authenticated and current_user.is_admin and not current_user.disabled)

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Response:
        if not current_user.is_authenticated:
            return login_redirect()
        abort(403)


class CsrfChecked:
    """Refuses an unsafe request without the session's CSRF token (403)."""

    def _handle_view(self, name: str, **kwargs: Any) -> Any:
        refused = super()._handle_view(name, **kwargs)  # type: ignore[misc]
        if refused is None and request.method not in ("GET", "HEAD", "OPTIONS"):
            check_csrf()
        return refused


class SecureIndexView(AdminOnly, CsrfChecked, AdminIndexView):
    """Base of the console's home page."""


class SecureView(AdminOnly, CsrfChecked, BaseView):
    """Base of custom (non-model) admin pages."""


class SecureModelView(AdminOnly, ModelView):
    """Base of every model view; its forms carry a CSRF token."""

    form_base_class = SecureForm

    def get_one(self, id: str) -> Any:
        """The row with this UUID primary key (None for a malformed id)."""
        try:
            key = uuid.UUID(id)
        except ValueError:
            return None
        return db.session.get(self.model, key)
