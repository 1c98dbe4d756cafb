"""Admin views. Every view inherits an admin-only base: anonymous visitors are sent to the
login page (with ``next``), signed-in non-admins get 403."""

from __future__ import annotations

import uuid
from typing import Any

from flask import abort, redirect, request
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import SecureForm
from flask_login import current_user
from sqlalchemy import inspect
from werkzeug.wrappers import Response

from bestchat import plugins
from bestchat.extensions import db
from bestchat.models import User
from bestchat.services import accounts

LOGIN_URL = "/login"


class AdminOnly:
    """``is_accessible`` for administrators only; others are refused."""

    def is_accessible(self) -> bool:
        return bool(current_user.is_authenticated and current_user.is_admin)

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Response:
        if not current_user.is_authenticated:
            return redirect(f"{LOGIN_URL}?next={request.full_path.rstrip('?')}")
        abort(403)


class SecureIndexView(AdminOnly, AdminIndexView):
    """The console's home page."""


class SecureView(AdminOnly, BaseView):
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


class PluginsView(SecureView):
    """Every plugin found, with its status and the error of a failed one."""

    @expose("/")
    def index(self) -> str:
        return self.render("bestchat_admin/plugins.html", plugins=plugins.get_plugins())


class UserView(SecureModelView):
    """Accounts: never shows password hashes; role and disabled changes go through the
    accounts service, which writes them to the audit log."""

    can_create = False
    can_delete = False
    column_list = ("email", "display_name", "role", "disabled", "last_login_at", "created_at")
    column_searchable_list = ("email",)
    column_filters = ("role", "disabled")
    form_columns = ("display_name", "role", "disabled")
    form_choices = {"role": [("user", "user"), ("admin", "admin")]}

    def on_model_change(self, form: Any, model: User, is_created: bool) -> None:
        actor = current_user._get_current_object()
        for attr, change in (("role", accounts.set_role), ("disabled", accounts.set_disabled)):
            old = inspect(model).attrs[attr].history.deleted
            if old:
                new = getattr(model, attr)
                setattr(model, attr, old[0])
                change(actor, model, new)


class AuditLogView(SecureModelView):
    """The audit trail, read-only, newest first."""

    can_create = can_edit = can_delete = False
    column_list = ("created_at", "action", "actor_id", "target_type", "target_id", "ip", "details")
    column_default_sort = ("created_at", True)
    column_filters = ("action", "actor_id")
