"""Security headers for the web UI's pages and assets.

The Content-Security-Policy allows scripts, styles, images and connections (fetch and the
same-origin WebSocket) from this origin only, no plugins, no ``<base>`` rewriting and no
framing; with no inline script anywhere in the UI, an injected tag can run nothing.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def add_security_headers(response):
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    return response
