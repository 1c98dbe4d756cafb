"""CSRF protection for cookie-authenticated unsafe requests.

The token lives in the signed session; the web UI sends it back in the ``X-CSRF-Token``
header. Requests authenticated with a Bearer token carry no ambient credentials and need none.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

from bestchat.errors import ApiError

HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def csrf_token() -> str:
    token = session.get("csrf_token")
    if not token:
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """403 ``csrf_failed`` unless an unsafe request carries the session's token."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get("csrf_token")
    sent = request.headers.get(HEADER) or request.form.get("csrf_token")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise ApiError(403, "csrf_failed", f"missing or wrong {HEADER} header")
