"""The web chat UI, served by Flask itself.

One HTML shell answers every page path (the ES modules under ``static/js`` route on the client);
the modules speak only the public contract (REST under ``/api/v1`` and the ``/ws`` WebSocket),
like any other client. Every response carries the strict security headers of
:mod:`bestchat.web.headers` (installed on the app): no inline script, nothing loaded from
another origin.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from bestchat import __version__

bp = Blueprint(
    "web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets",
)

# Client-side routes; each is served the same shell and the router in js/router.js picks the view.
PAGES = ("/", "/login", "/signup", "/c/<uuid:conversation_id>", "/settings", "/usage")


def shell(**_route_args):
    """The application shell: markup skeleton, stylesheet and the entry module."""
    return render_template(
        "app.html",
        version=__version__,
        registration_open=bool(current_app.config["REGISTRATION_OPEN"]),
    )


for _path in PAGES:
    bp.add_url_rule(_path, view_func=shell)
