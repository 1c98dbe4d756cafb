"""Admin views of users and the audit log (bases: :mod:`bestchat.admin.base`)."""

from __future__ import annotations

from typing import Any

from flask_login import current_user
from sqlalchemy import inspect

from bestchat.admin.base import SecureModelView
from bestchat.models import User
from bestchat.services import accounts


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
