"""The signed-in user (``/api/v1/me``): profile, password, data export and account deletion."""

from __future__ import annotations

from flask import g, session
from flask_login import logout_user

from bestchat.api import bp
from bestchat.api.openapi import documented, obj, ref, string
from bestchat.security.authn import login_required
from bestchat.security.csrf import csrf_token
from bestchat.serializers import user_json
from bestchat.services import accounts
from bestchat.validation import field, json_body


@bp.get("/me")
@documented(responses={200: obj({"user": ref("User"), "auth": string(enum=["session", "token"]),
                                 "csrf_token": string()}, ("user", "auth"))})
@login_required
def me():
    """The current user, how they authenticated, and (for the web session) the CSRF token."""
    body = {"user": user_json(g.user), "auth": g.auth_method}
    if g.auth_method == "session":
        body["csrf_token"] = csrf_token()
    return body


@bp.get("/me/export")
@documented(responses={200: {"type": "object"}})
@login_required
def export():
    """Everything the user owns as one JSON document (GDPR export)."""
    response_body = accounts.export(g.user)
    return response_body, 200, {"Content-Disposition": 'attachment; filename="bestchat-export.json"'}


@bp.post("/me/password")
@documented(body=obj({"current_password": string(1024), "new_password": string(1024)},
                     ("current_password", "new_password")), responses={204: None})
@login_required
def change_password():
    """Change the password. Body: {current_password, new_password}. 204. Every web session of
    the account ends (this one too: sign in again) and its open sockets close; API tokens stay."""
    body = json_body()
    current = field(body, "current_password", strip=False)
    new = field(body, "new_password", strip=False)
    accounts.change_password(g.user, current, new)
    if g.auth_method == "session":
        logout_user()
        session.clear()
    return "", 204


@bp.delete("/me")
@documented(body=obj({"password": string()}, ("password",)), responses={204: None})
@login_required
def delete_me():
    """Delete the account and everything it owns. Body: {password}. 204; 409 ``last_admin``
    for the last active admin (make another account admin first)."""
    password = field(json_body(), "password", strip=False)
    accounts.delete_account(g.user, password)
    if g.auth_method == "session":
        logout_user()
        session.clear()
    return "", 204
