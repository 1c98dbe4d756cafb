"""Who is making this request: a Bearer API token or the web session, checked in one place.

``authenticate()`` runs before every API request and sets ``g.user`` (or leaves it None);
``login_required`` and ``admin_required`` guard views. Cookie-authenticated unsafe requests
must pass the CSRF check; Bearer requests need none.

Web sessions name the account *and* its ``session_generation`` (``User.get_id``): bumping the
generation (:func:`end_sessions`: sign-out, password change, disable) ends every session of
the account. The remember-me cookie holds a random token stored hashed (:class:`RememberToken`),
deleted by the same bump; it signs the browser in again when its session has ended. Cookies
are ``HttpOnly``, ``SameSite=Lax`` and ``Secure`` when the request came over HTTPS.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps

from flask import Flask, current_app, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_user
from sqlalchemy import bindparam, delete, select, update

from bestchat.errors import AccountDisabled, Forbidden, Unauthorized
from bestchat.extensions import db, login_manager
from bestchat.models import ApiToken, User
from bestchat.models.users import RememberToken
from bestchat.models.base import as_utc, utcnow
from bestchat.security.csrf import check_csrf

TOKEN_PREFIX = "bc_"
# last_used_at is written at most this often per token, to keep reads read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def new_token() -> tuple[str, str]:
    """A fresh plaintext token and its stored hash."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_token(plaintext)


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


REMEMBER_COOKIE = "bestchat_remember"
# Flask-Login's own remember cookie (user id + signature): never set, removed where found.
LEGACY_REMEMBER_COOKIE = "remember_token"
# The name Flask-Login is told to read its remember cookie from: one nobody sets, so it never
# decodes a cookie itself and the request loader below is the only way back in.
_FLASK_LOGIN_REMEMBER_COOKIE = "bestchat_flask_login_remember_unused"


@login_manager.user_loader
def _load_session_user(session_id: str) -> User | None:
    """The account of a session id ``<user id>:<session generation>``, while both still match."""
    user_id, _, generation = session_id.partition(":")
    try:
        user = db.session.get(User, uuid.UUID(user_id))
    except ValueError:
        return None
    if user is None or user.disabled or str(user.session_generation) != generation:
        return None
    return user


@login_manager.request_loader
def _load_remembered_user(req) -> User | None:
    """A browser whose session ended signs in again with a valid remember-me cookie."""
    plaintext = req.cookies.get(REMEMBER_COOKIE)
    if not plaintext:
        return None
    token = db.session.scalar(select(RememberToken).where(RememberToken.token_hash == hash_token(plaintext)))
    if token is None or as_utc(token.expires_at) <= utcnow():
        g.forget_remember_cookie = True
        return None
    user = db.session.get(User, token.user_id)
    if user is None or user.disabled:
        return None
    login_user(user, fresh=False)
    return user


def remember(user: User) -> str:
    """A new remember-me token for ``user`` (stored hashed); returns the cookie's value."""
    plaintext = secrets.token_urlsafe(32)
    lifetime = timedelta(days=int(current_app.config["REMEMBER_DAYS"]))
    db.session.add(RememberToken(user_id=user.id, token_hash=hash_token(plaintext),
                                 expires_at=utcnow() + lifetime))
    db.session.commit()
    return plaintext


def set_remember_cookie(response, plaintext: str) -> None:
    response.set_cookie(REMEMBER_COOKIE, plaintext, max_age=int(current_app.config["REMEMBER_DAYS"]) * 86400,
                        path="/", httponly=True, samesite="Lax", secure=cookie_secure(current_app))


def forget_remember_cookie(response, *, legacy_only: bool = False) -> None:
    """Remove the browser's remember-me cookie (and Flask-Login's legacy one)."""
    for name in (LEGACY_REMEMBER_COOKIE,) if legacy_only else (REMEMBER_COOKIE, LEGACY_REMEMBER_COOKIE):
        if name in request.cookies:
            response.delete_cookie(name, path="/", httponly=True, samesite="Lax")


def end_sessions(user: User) -> None:
    """End every web session and remember-me token of ``user`` (the caller commits): bumps the
    session generation, which the session loader compares."""
    db.session.execute(update(User).where(User.id == user.id)
                       .values(session_generation=User.session_generation + 1))
    db.session.execute(delete(RememberToken).where(RememberToken.user_id == user.id))
    db.session.expire(user, ["session_generation"])


def cookie_secure(app: Flask) -> bool:
    """Cookies are ``Secure`` when configured so, or when this request came over HTTPS."""
    return bool(app.config.get("SESSION_COOKIE_SECURE")) or (has_request_context() and request.is_secure)


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie session, ``Secure`` whenever the request came over HTTPS.

    A request without a session cookie (every Bearer request) gets its empty session without
    building a signing serializer first, as Flask does for every request."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return cookie_secure(app)

    def open_session(self, app: Flask, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def init_auth(app: Flask) -> None:
    """Session cookies with the flags above; remember-me cookies removed when they stop working."""
    app.session_interface = SessionCookies()
    app.config["REMEMBER_COOKIE_NAME"] = _FLASK_LOGIN_REMEMBER_COOKIE

    @app.after_request
    def _drop_dead_remember_cookie(response):
        if g.get("forget_remember_cookie"):
            forget_remember_cookie(response)
        return response


def user_for_token(plaintext: str) -> User:
    """The active user owning ``plaintext``; :class:`Unauthorized` for an unknown, revoked or
    expired token, :class:`AccountDisabled` if its user is disabled."""
    return token_for(plaintext).user


def token_for(plaintext: str) -> ApiToken:
    """The valid token ``plaintext`` of an active user; :class:`Unauthorized` for an unknown,
    revoked or expired token, :class:`AccountDisabled` if its user is disabled."""
    row = db.session.execute(_TOKEN_AND_USER, {"token_hash": hash_token(plaintext)}).first()
    token = row[0] if row is not None else None
    now = utcnow()
    if not token_valid(token, now):
        raise Unauthorized("invalid_token", "API token is invalid, revoked or expired")
    user = token.user
    if user.disabled:
        raise AccountDisabled()
    last = as_utc(token.last_used_at)
    if last is None or now - last > LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return token


def token_valid(token: ApiToken | None, now=None) -> bool:
    now = now or utcnow()
    return token is not None and token.revoked_at is None and (
        token.expires_at is None or as_utc(token.expires_at) > now)


@dataclass(frozen=True)
class SocketCredentials:
    """What a WebSocket was opened with, checked again while it stays open: the account and
    its role, and the web session's generation or the API token."""

    user_id: uuid.UUID
    role: str
    session_generation: int | None = None
    token_id: uuid.UUID | None = None

    @classmethod
    def of_session(cls, user: User) -> "SocketCredentials":
        return cls(user.id, user.role, session_generation=user.session_generation)

    @classmethod
    def of_token(cls, token: ApiToken) -> "SocketCredentials":
        return cls(token.user_id, token.user.role, token_id=token.id)

    @classmethod
    def of_account(cls, user: User) -> "SocketCredentials":
        """The account alone (its role and enabled state)."""
        return cls(user.id, user.role)

    def matches(self, user: User) -> bool:
        """The cheap check, on a freshly loaded ``user``: enabled, same role, same session."""
        return (not user.disabled and user.role == self.role
                and (self.session_generation is None or user.session_generation == self.session_generation))

    def still_valid(self) -> bool:
        """The whole check (needs an app context): :meth:`matches`, and the token not revoked."""
        user = db.session.get(User, self.user_id)
        if user is None or not self.matches(user):
            return False
        return self.token_id is None or token_valid(db.session.get(ApiToken, self.token_id))


# The token and its user in one round trip (``token.user`` then comes from the session's
# identity map), built once so that SQLAlchemy's compiled-statement cache key is computed once.
_TOKEN_AND_USER = (select(ApiToken, User).join(User, ApiToken.user_id == User.id)
                   .where(ApiToken.token_hash == bindparam("token_hash")))


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if header:
        raise Unauthorized("invalid_token", "Authorization header must be 'Bearer <token>'")
    return None


def authenticate() -> None:
    """Set ``g.user`` and ``g.auth_method`` for this request (None when anonymous)."""
    g.user, g.auth_method, g.api_token_id = None, None, None
    token = bearer_token()
    if token:
        api_token = token_for(token)
        g.user, g.auth_method, g.api_token_id = api_token.user, "token", api_token.id
        return
    if current_user.is_authenticated:
        g.user, g.auth_method = current_user._get_current_object(), "session"
        check_csrf()


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("user") is None:
            raise Unauthorized("unauthorized", "authentication required")
        return view(*args, **kwargs)

    wrapper.auth_required = True
    return wrapper


def admin_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("user") is None:
            raise Unauthorized("unauthorized", "authentication required")
        if not g.user.is_admin:
            raise Forbidden("forbidden", "admin role required")
        return view(*args, **kwargs)

    wrapper.auth_required = True
    return wrapper


def client_ip() -> str:
    return request.remote_addr or "unknown"


