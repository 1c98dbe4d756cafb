"""The security headers of every response: the web UI's pages and assets, the admin console,
the REST API, ``/v1``, health checks and errors alike (:func:`init_headers`).

The Content-Security-Policy allows scripts, styles, images and connections (fetch and the
same-origin WebSocket) from this origin only, no plugins, no ``<base>`` rewriting and no
framing; with no inline script anywhere in the UI, an injected tag can run nothing. The admin
console (Flask-Admin) has inline scripts: they carry a per-request nonce; its inline
``onclick`` handlers (delete confirmation, filter links) and ``javascript:void(0)`` links are
allowed by hash; its widgets (select2, date pickers) set ``style`` attributes, so its styles
may be inline. Nothing may frame any page (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from flask import Flask, g, request

ADMIN_PREFIX = "/admin"

_COMMON = [
    "default-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]

CONTENT_SECURITY_POLICY = "; ".join([*_COMMON, "script-src 'self'", "style-src 'self'"])


def _handler_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Flask-Admin's inline event handlers and ``javascript:`` links (bootstrap4 templates), allowed
# by their exact text.
_ADMIN_HANDLERS = (
    "return faHelpers.safeConfirm('Are you sure you want to delete this record?');",
    "return false;",
    "javascript:void(0)",
    "void(0)",
)

_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def csp_nonce() -> str:
    """This request's script nonce (the admin console's inline scripts carry it)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return nonce


def content_security_policy() -> str:
    """The policy of this request's response: the strict one, or the admin console's."""
    if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
        handlers = " ".join(_handler_hash(h) for h in _ADMIN_HANDLERS)
        return "; ".join([*_COMMON, f"script-src 'self' 'nonce-{csp_nonce()}' 'unsafe-hashes' {handlers}",
                          "style-src 'self' 'unsafe-inline'"])
    return CONTENT_SECURITY_POLICY


def add_security_headers(response):
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_headers(app: Flask) -> None:
    """Add the headers to every response the app sends."""
    app.after_request(add_security_headers)
