"""The REST API: one blueprint under ``/api/v1``, one module per resource.

Every request is authenticated first (``security.authn.authenticate``); views opt into
requiring a user with ``login_required``. Query parameters holding text the database cannot
store are refused before any view runs (``bestchat.validation.check_query_text``). Views raise
the domain errors of ``bestchat.errors``; ``bestchat.error_responses`` answers them as JSON
with their status.
"""

from flask import Blueprint

from bestchat.security.authn import authenticate
from bestchat.validation import check_query_text

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(authenticate)
bp.before_request(check_query_text)


def _register_modules() -> None:
    # Imported for their side effect of adding routes to ``bp``.
    from bestchat.api import (  # noqa: F401
        auth, context, conversations, me, messages, models, openapi, providers, tokens, tools, usage,
    )


_register_modules()
