"""The signed-in user (``/api/v1/me``): profile, data export and account deletion."""

from __future__ import annotations

from flask import g, session
from flask_login import logout_user

from bestchat.api import bp
from bestchat.api.validation import field, json_body
from bestchat.security.authn import login_required
from bestchat.security.csrf import csrf_token
from bestchat.serializers import user_json
from bestchat.services import accounts


@bp.get("/me")
@login_required
def me():
    """The current user, how they authenticated, and (for the web session) the CSRF token."""
    body = {"user": user_json(g.user), "auth": g.auth_method}
    if g.auth_method == "session":
        body["csrf_token"] = csrf_token()
    return body


@bp.get("/me/export")
@login_required
def export():
    """Everything the user owns as one JSON document (GDPR export)."""
    response_body = accounts.export(g.user)
    return response_body, 200, {"Content-Disposition": 'attachment; filename="bestchat-export.json"'}


@bp.delete("/me")
@login_required
def delete_me():
    """Delete the account and everything it owns. Body: {password}. 204."""
    password = field(json_body(), "password", strip=False)
    accounts.delete_account(g.user, password)
    if g.auth_method == "session":
        logout_user()
        session.clear()
    return "", 204
