"""The web chat UI, served by Flask itself.

One HTML shell answers every page path (the ES modules under ``static/js`` route on the client);
the modules speak only the public contract (REST under ``/api/v1`` and the ``/ws`` WebSocket),
like any other client. Every response carries the strict security headers of
:mod:`bestchat.web.headers` (installed on the app): no inline script, nothing loaded from
another origin.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, render_template, request

from bestchat import __version__

bp = Blueprint(
    "web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets",
)

# Client-side routes; each is served the same shell and the router in js/router.js picks the view.
PAGES = ("/", "/login", "/signup", "/c/<uuid:conversation_id>", "/settings", "/usage", "/plan")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: ``value`` when it is a path on this server (one leading
    ``/``, no scheme, no host, no backslash or control character), else ``/``. It keeps
    ``/login?next=...`` from sending anyone to another site."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(char) < 32 or ord(char) == 127 for char in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def shell(**_route_args):
    """The application shell: markup skeleton, stylesheet and the entry module. It tells the
    modules the registration mode (read at each request: the console changes it at runtime)
    and, on the sign-in page, the checked ``next`` path to go to once signed in."""
    return render_template(
        "app.html",
        version=__version__,
        registration=current_app.config["REGISTRATION"],
        next_path=safe_next(request.args.get("next")),
    )


for _path in PAGES:
    bp.add_url_rule(_path, view_func=shell)
