"""The admin console (Flask-Admin at ``/admin``), installed as ``bestchat.admin``.

``init_admin(app)`` mounts the console with the core views (plugins, users, audit log) and then
lets plugins add theirs through the ``register_admin_views(admin)`` hook. Every view inherits
the admin-only bases of :mod:`bestchat.admin.base`.
"""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_admin import Admin

from bestchat.admin.audit import AuditLogView
from bestchat.admin.connections import ConnectionsView
from bestchat.admin.conversations import ConversationsView
from bestchat.admin.groups import GroupsView
from bestchat.admin.home import HomeView
from bestchat.admin.plans import PlansView
from bestchat.admin.plugins import PluginsView
from bestchat.admin.prices import PricesView
from bestchat.admin.settings import SettingsView
from bestchat.admin.usage import UsageView
from bestchat.admin.users import UserView
from bestchat.extensions import db
from bestchat.models import AuditLog, User
# (by name: the submodule bestchat.admin.plugins would shadow a module named "plugins" here)
from bestchat.plugins import run_register_admin_views
from bestchat.security.csrf import csrf_token
from bestchat.web.headers import csp_nonce

# Serves this package's templates only (no routes).
templates = Blueprint("bestchat_admin", __name__, template_folder="templates")


def init_admin(app: Flask) -> Admin:
    app.register_blueprint(templates)
    app.jinja_env.globals["csrf_token"] = csrf_token
    admin = Admin(app, name="BestChat admin", url="/admin", index_view=HomeView(name="Home", url="/admin"),
                  csp_nonce_generator=csp_nonce)
    admin.add_view(UserView(User, db, name="Users", endpoint="users"))
    admin.add_view(GroupsView(name="Groups", endpoint="groups"))
    admin.add_view(PlansView(name="Plans", endpoint="plans"))
    admin.add_view(ConnectionsView(name="Connections", endpoint="connections"))
    admin.add_view(PluginsView(name="Plugins", endpoint="plugins"))
    admin.add_view(SettingsView(name="Settings", endpoint="settings"))
    admin.add_view(UsageView(name="Usage", endpoint="usage"))
    admin.add_view(PricesView(name="Prices", endpoint="prices"))
    admin.add_view(ConversationsView(name="Conversations", endpoint="conversations"))
    admin.add_view(AuditLogView(AuditLog, db, name="Audit log", endpoint="audit_log"))
    run_register_admin_views(admin)
    return admin
