"""Sign-up, sign-in and sign-out (``/api/v1/auth/...``).

Sign-up follows the ``REGISTRATION`` mode, read from the app's config at each request (the
console changes it at runtime): ``open`` lets anyone in; ``invite`` and ``closed`` need an
invitation token (``invite``), which works in every mode (:mod:`bestchat.services.invites`).

Both sign-up and sign-in refuse requests a page of another site made (login CSRF,
:func:`bestchat.security.csrf.check_same_origin`). Sign-in is throttled per address and, for
wrong passwords, per source and account (:mod:`bestchat.security.ratelimit`). Sign-out ends
every web session of the account (its session generation). ``POST /ws-ticket`` trades the
request's credentials for a short-lived single-use WebSocket ticket
(:mod:`bestchat.security.tickets`).
"""

from __future__ import annotations

from flask import current_app, g, jsonify, session
from flask_login import login_user, logout_user

from bestchat.api import bp
from bestchat.api.openapi import documented, nullable, obj, ref, string
from bestchat.errors import Forbidden, Unauthorized
from bestchat.security import ratelimit, tickets
from bestchat.security.authn import (
    SocketCredentials, client_ip, forget_remember_cookie, login_required, remember,
    set_remember_cookie,
)
from bestchat.security.csrf import check_same_origin, csrf_token
from bestchat.security.ratelimit import limit
from bestchat.serializers import user_json
from bestchat.services import accounts, invites
from bestchat.validation import field, json_body


@bp.post("/auth/register")
@documented(body=obj({"email": string(320, format="email"), "password": string(1024),
                      "display_name": nullable(string(120)), "invite": nullable(string(200))},
                     ("email", "password")),
            responses={201: obj({"user": ref("User")}, ("user",))})
def register():
    """Create an account. Body: {email, password, display_name?, invite?}. 201 with the user.
    Without an invitation only while registration is open (403 ``registration_closed``); an
    unknown, used or expired invitation, or one made for another email, is 403
    ``invite_invalid``. An invitation gives the account its role and group."""
    check_same_origin()
    limit("RATELIMIT_REGISTER_PER_IP", client_ip())
    body = json_body()
    invite = field(body, "invite", required=False, max_length=200)
    if not invite and current_app.config["REGISTRATION"] != "open":
        raise Forbidden("registration_closed", "registration is closed on this server")
    email = field(body, "email", max_length=320)
    password = field(body, "password", strip=False)
    display_name = field(body, "display_name", required=False, max_length=120)
    if invite:
        user = invites.register(invite, email, password, display_name=display_name)
    else:
        user = accounts.register(email, password, display_name=display_name)
    return {"user": user_json(user)}, 201


@bp.post("/auth/login")
@documented(body=obj({"email": string(320), "password": string(1024), "remember": nullable({"type": "boolean"})},
                     ("email", "password")),
            responses={200: obj({"user": ref("User"), "csrf_token": string()}, ("user", "csrf_token"))})
def login():
    """Sign in with {email, password, remember?}; sets the session cookie (and with
    ``remember`` a remember-me cookie). 200 with the user and the CSRF token to send as
    X-CSRF-Token on later unsafe requests."""
    check_same_origin()
    body = json_body()
    email = field(body, "email", max_length=320)
    password = field(body, "password", strip=False)
    remember_me = field(body, "remember", bool, required=False, default=False)
    ip = client_ip()
    limit("RATELIMIT_LOGIN_PER_IP", ip)
    ratelimit.check_login_allowed(email, ip)
    try:
        user = accounts.check_login(email, password)
    except Unauthorized:  # (a wrong pair; a disabled account is not a failed attempt)
        ratelimit.login_failed(email, ip)
        raise
    session.clear()  # a fresh session on sign-in: no fixation
    login_user(user)
    response = jsonify({"user": user_json(user), "csrf_token": csrf_token()})
    if remember_me:
        set_remember_cookie(response, remember(user))
    forget_remember_cookie(response, legacy_only=remember_me)
    ratelimit.login_succeeded(email, ip, response)
    return response


@bp.post("/auth/logout")
@documented(responses={200: obj({"ok": {"type": "boolean"}, "user_id": string(format="uuid")},
                                ("ok", "user_id"))})
@login_required
def logout():
    """Sign out: ends every web session and remember-me cookie of the account."""
    user_id = str(g.user.id)
    if g.auth_method == "session":
        accounts.logout(g.user)
    logout_user()
    session.clear()
    response = jsonify({"ok": True, "user_id": user_id})
    forget_remember_cookie(response)
    return response


@bp.post("/ws-ticket")
@documented(responses={201: obj({"ticket": string(), "expires_in": {"type": "integer"}},
                                ("ticket", "expires_in"))})
@login_required
def ws_ticket():
    """A single-use ticket opening one WebSocket as this user: ``/ws?ticket=<ticket>`` within
    ``expires_in`` seconds. It keeps API tokens out of URLs (and so out of access logs)."""
    if g.auth_method == "token":
        credentials = SocketCredentials(g.user.id, g.user.role, token_id=g.api_token_id)
    else:
        credentials = SocketCredentials.of_session(g.user)
    ticket, expires_in = tickets.issue(credentials)
    return {"ticket": ticket, "expires_in": expires_in}, 201
