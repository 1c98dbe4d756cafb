"""The admin console (Flask-Admin at ``/admin``), installed as ``bestchat.admin``.

``init_admin(app)`` mounts the console with the core views (plugins, users, audit log) and then
lets plugins add theirs through the ``register_admin_views(admin)`` hook. Every view inherits
the admin-only bases of :mod:`bestchat.admin.base`.
"""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_admin import Admin

from bestchat import plugins
from bestchat.admin.base import SecureIndexView
from bestchat.admin.audit import AuditLogView
from bestchat.admin.users import UserView
from bestchat.admin.views import PluginsView
from bestchat.extensions import db
from bestchat.models import AuditLog, User
from bestchat.security.csrf import csrf_token
from bestchat.web.headers import csp_nonce

# Serves this package's templates only (no routes).
templates = Blueprint("bestchat_admin", __name__, template_folder="templates")


def init_admin(app: Flask) -> Admin:
    app.register_blueprint(templates)
    app.jinja_env.globals["csrf_token"] = csrf_token
    admin = Admin(app, name="BestChat admin", url="/admin", index_view=SecureIndexView(url="/admin"),
                  csp_nonce_generator=csp_nonce)
    admin.add_view(PluginsView(name="Plugins", endpoint="plugins"))
    admin.add_view(UserView(User, db, name="Users", endpoint="users"))
    admin.add_view(AuditLogView(AuditLog, db, name="Audit log", endpoint="audit_log"))
    plugins.run_register_admin_views(admin)
    return admin
