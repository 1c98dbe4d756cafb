"""The OpenAI-compatible API: one blueprint under ``/v1`` so the official ``openai`` SDK (and
anything else speaking OpenAI's chat API) works against BestChat unchanged.

Authentication is ``Authorization: Bearer <BestChat api token>`` only: the session cookie is
ignored here, so there is no CSRF check. Errors have OpenAI's shape, a superset of ours:
``{"error": {"message", "type", "code", "param"}}`` with the right status, so the SDK raises
its matching exception classes. Views live in :mod:`.views`; request parsing in
:mod:`.parsing`; the response objects and their delivery in :mod:`.replies`.
"""

from __future__ import annotations

import logging

from flask import Blueprint, g
from werkzeug.exceptions import HTTPException

from bestchat.error_responses import json_response, openai_type
from bestchat.errors import DomainError, Unauthorized
from bestchat.openai_compat.replies import error_response
from bestchat.security.authn import bearer_token, user_for_token

log = logging.getLogger(__name__)

bp = Blueprint("openai_compat", __name__, url_prefix="/v1")


@bp.before_request
def authenticate() -> None:
    """Set ``g.user`` from the Bearer token: 401 without a valid one, 403 for a disabled user."""
    token = bearer_token()
    if token is None:
        raise Unauthorized("missing_api_key", "send your BestChat API token as 'Authorization: Bearer <token>'")
    g.user, g.auth_method = user_for_token(token), "token"


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError):
    return error_response(error)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    status = error.code or 500
    return _openai_error(status, error.name.lower().replace(" ", "_"), error.description or error.name)


@bp.errorhandler(Exception)
def _unexpected(error: Exception):
    log.exception("unhandled error in the OpenAI-compatible API")
    return _openai_error(500, "internal_error", "internal server error")


def _openai_error(status: int, code: str, message: str):
    return json_response({"error": {"message": message, "type": openai_type(status), "code": code,
                                    "param": None}}, status)


from bestchat.openai_compat import views  # noqa: E402,F401  (adds the routes to ``bp``)
