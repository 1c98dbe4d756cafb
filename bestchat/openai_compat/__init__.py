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

from bestchat.errors import ApiError
from bestchat.openai_compat.replies import error_response
from bestchat.security.authn import bearer_token, user_for_token

log = logging.getLogger(__name__)

bp = Blueprint("openai_compat", __name__, url_prefix="/v1")


@bp.before_request
def authenticate() -> None:
    """Set ``g.user`` from the Bearer token: 401 without a valid one, 403 for a disabled user."""
    token = bearer_token()
    if token is None:
        raise ApiError(401, "missing_api_key",
                       "send your BestChat API token as 'Authorization: Bearer <token>'")
    g.user, g.auth_method = user_for_token(token), "token"


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    return error_response(error)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    code = error.name.lower().replace(" ", "_")
    return error_response(ApiError(error.code or 500, code, error.description or error.name))


@bp.errorhandler(Exception)
def _unexpected(error: Exception):
    log.exception("unhandled error in the OpenAI-compatible API")
    return error_response(ApiError(500, "internal_error", "internal server error"))


from bestchat.openai_compat import views  # noqa: E402,F401  (adds the routes to ``bp``)
