"""Who is making this request: a Bearer API token or the web session, checked in one place.

``authenticate()`` runs before every API request and sets ``g.user`` (or leaves it None);
``login_required`` and ``admin_required`` guard views. Cookie-authenticated unsafe requests
must pass the CSRF check; Bearer requests need none.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from functools import wraps

from flask import g, request
from flask_login import current_user
from sqlalchemy import select

from bestchat.errors import ApiError, account_disabled
from bestchat.extensions import db, login_manager
from bestchat.models import ApiToken, User
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


@login_manager.user_loader
def _load_session_user(user_id: str) -> User | None:
    try:
        user = db.session.get(User, uuid.UUID(user_id))
    except ValueError:
        return None
    return user if user is not None and not user.disabled else None


def user_for_token(plaintext: str) -> User:
    """The active user owning ``plaintext``; 401 for unknown/revoked/expired, 403 if disabled."""
    token = db.session.scalar(select_token(hash_token(plaintext)))
    now = utcnow()
    if token is None or token.revoked_at is not None or (
        token.expires_at is not None and as_utc(token.expires_at) <= now
    ):
        raise ApiError(401, "invalid_token", "API token is invalid, revoked or expired")
    user = token.user
    if user.disabled:
        raise account_disabled()
    last = as_utc(token.last_used_at)
    if last is None or now - last > LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return user


def select_token(token_hash: str):
    return select(ApiToken).where(ApiToken.token_hash == token_hash)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if header:
        raise ApiError(401, "invalid_token", "Authorization header must be 'Bearer <token>'")
    return None


def authenticate() -> None:
    """Set ``g.user`` and ``g.auth_method`` for this request (None when anonymous)."""
    g.user, g.auth_method = None, None
    token = bearer_token()
    if token:
        g.user, g.auth_method = user_for_token(token), "token"
        return
    if current_user.is_authenticated:
        g.user, g.auth_method = current_user._get_current_object(), "session"
        check_csrf()


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("user") is None:
            raise ApiError(401, "unauthorized", "authentication required")
        return view(*args, **kwargs)

    wrapper.auth_required = True
    return wrapper


def admin_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("user") is None:
            raise ApiError(401, "unauthorized", "authentication required")
        if not g.user.is_admin:
            raise ApiError(403, "forbidden", "admin role required")
        return view(*args, **kwargs)

    wrapper.auth_required = True
    return wrapper


def client_ip() -> str:
    return request.remote_addr or "unknown"


