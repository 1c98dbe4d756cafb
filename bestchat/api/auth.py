"""Sign-up, sign-in and sign-out (``/api/v1/auth/...``); rate limited per IP and per account."""

from __future__ import annotations

from flask import current_app, g, session
from flask_login import login_user, logout_user

from bestchat.api import bp
from bestchat.api.validation import field, json_body
from bestchat.errors import ApiError
from bestchat.security.authn import client_ip, login_required
from bestchat.security.csrf import csrf_token
from bestchat.security.ratelimit import limit
from bestchat.serializers import user_json
from bestchat.services import accounts


@bp.post("/auth/register")
def register():
    """Create an account. Body: {email, password, display_name?}. 201 with the user."""
    if not current_app.config["REGISTRATION_OPEN"]:
        raise ApiError(403, "registration_closed", "registration is closed on this server")
    limit("RATELIMIT_REGISTER_PER_IP", client_ip())
    body = json_body()
    email = field(body, "email", max_length=320)
    password = field(body, "password", strip=False)
    display_name = field(body, "display_name", required=False, max_length=120)
    user = accounts.register(email, password, display_name=display_name)
    return {"user": user_json(user)}, 201


@bp.post("/auth/login")
def login():
    """Sign in with {email, password, remember?}; sets the session cookie. 200 with the user
    and the CSRF token to send as X-CSRF-Token on later unsafe requests."""
    body = json_body()
    email = field(body, "email", max_length=320)
    password = field(body, "password", strip=False)
    remember = field(body, "remember", bool, required=False, default=False)
    limit("RATELIMIT_LOGIN_PER_IP", client_ip())
    limit("RATELIMIT_LOGIN_PER_ACCOUNT", email.lower())
    user = accounts.check_login(email, password)
    session.clear()  # a fresh session on sign-in: no fixation
    login_user(user, remember=remember)
    return {"user": user_json(user), "csrf_token": csrf_token()}


@bp.post("/auth/logout")
@login_required
def logout():
    """End the web session."""
    logout_user()
    session.clear()
    return {"ok": True, "user_id": str(g.user.id)}
