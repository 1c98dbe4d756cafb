"""The REST API: one blueprint under ``/api/v1``, one module per resource.

Every request is authenticated first (``security.authn.authenticate``); views opt into
requiring a user with ``login_required``. Query parameters holding text the database cannot
store are refused before any view runs (``bestchat.validation.check_query_text``). Views raise
the domain errors of ``bestchat.errors``; ``bestchat.error_responses`` answers them as JSON
with their status. A view marked ``public = True`` (Stripe's webhook, authenticated by its
signature) skips authentication and so the session's CSRF check.
"""

from flask import Blueprint, current_app, g, request

from bestchat.security.authn import authenticate
from bestchat.validation import check_query_text

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def authenticate_unless_public() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "public", False):
        g.user, g.auth_method, g.api_token_id = None, None, None
    else:
        authenticate()


bp.before_request(authenticate_unless_public)
bp.before_request(check_query_text)


def _register_modules() -> None:
    # Imported for their side effect of adding routes to ``bp``.
    from bestchat.api import (  # noqa: F401
        auth, billing, context, conversations, me, messages, models, openapi, providers, tokens, tools,
        uploads, usage,
    )


_register_modules()
