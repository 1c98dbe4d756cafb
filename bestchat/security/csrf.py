"""CSRF protection for cookie-authenticated unsafe requests, and login CSRF.

The token lives in the signed session; the web UI sends it back in the ``X-CSRF-Token``
header. Requests authenticated with a Bearer token carry no ambient credentials and need none.

Sign-in and sign-up have no session yet, so no token: :func:`check_same_origin` refuses them
when the browser says they come from another site (``Sec-Fetch-Site``, ``Origin``). A client
that sends neither header (curl, SDKs) is not a browser that a page could drive, and passes.
"""

from __future__ import annotations

import hmac
import secrets

from urllib.parse import urlsplit

from flask import request, session

from bestchat.errors import Forbidden

HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def csrf_token() -> str:
    token = session.get("csrf_token")
    if not token:
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """:class:`Forbidden` (``csrf_failed``) unless an unsafe request carries the session's token."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get("csrf_token")
    sent = request.headers.get(HEADER) or request.form.get("csrf_token")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Forbidden("csrf_failed", f"missing or wrong {HEADER} header")


# Sec-Fetch-Site values of requests a page of this origin (or the user) made.
_SAME_SITE_FETCH = {"same-origin", "none"}


def check_same_origin() -> None:
    """:class:`Forbidden` (``cross_site_request``) for a browser request made by a page of
    another origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in _SAME_SITE_FETCH:
        raise Forbidden("cross_site_request", "cross-site sign-in requests are refused")
    origin = request.headers.get("Origin")
    if origin is not None and not same_origin(origin):
        raise Forbidden("cross_site_request", "cross-site sign-in requests are refused")


def same_origin(origin: str) -> bool:
    """Whether an ``Origin`` header names this server's host and port (the scheme is not
    compared: behind a TLS-terminating proxy the server may see plain HTTP)."""
    return urlsplit(origin.strip()).netloc.lower() == request.host.lower()
