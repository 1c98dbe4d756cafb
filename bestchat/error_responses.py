"""Where a domain error becomes a response: the one table of statuses, and the shapes built
from it for REST (``{"error": {"code", "message"}}``), WebSocket ``error`` frames and
OpenAI's ``{"error": {"message", "type", "code", "param"}}``.

:func:`register_error_handlers` gives every error of the app the REST shape with the right
status (never an HTML page or a traceback, except HTML error pages for browser navigations
outside the API). The ``/v1`` blueprint answers in OpenAI's shape from the same table.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from bestchat.errors import (
    Conflict, DomainError, Forbidden, Invalid, NotFound, PaymentRequired, RateLimited, TooLarge, Unauthorized, Unavailable,
    UnsupportedMediaType, Unreadable,
)

log = logging.getLogger(__name__)

# The status of each kind of domain error (a subclass takes its closest base's).
STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    Unauthorized: 401,
    PaymentRequired: 402,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    Unreadable: 422,
    RateLimited: 429,
    Unavailable: 503,
}

# A failed generation's error code -> (HTTP status, whether retrying the request may help), for
# the adapters that answer with the generation's outcome (``/v1`` without streaming). Any other
# code (internal_error, interrupted) is a 500 not worth retrying.
FAILED_GENERATION: dict[str, tuple[int, bool]] = {
    "unknown_model": (400, False),
    "model_not_allowed": (403, False),
    "provider_key_missing": (400, False),
    "provider_bad_request": (400, False),
    "provider_auth": (502, False),
    "provider_error": (502, False),
    "provider_failed": (502, False),
    "provider_rate_limited": (429, True),
    "provider_unavailable": (502, True),
    "provider_timeout": (504, True),
    "too_long": (504, False),
    "unavailable": (503, True),
}

# Codes of werkzeug's own exceptions (routing, body limits), by status.
HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 402: "payment_required", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "rate_limited", 500: "internal_error",
    503: "unavailable",
}

OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
                403: "permission_error",
                404: "invalid_request_error", 409: "invalid_request_error", 429: "rate_limit_error"}


def status_of(error: DomainError) -> int:
    """The HTTP status of ``error``: its class's entry in :data:`STATUS`, else 500."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def headers_of(error: DomainError) -> dict[str, str]:
    return {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}


def body_of(error: DomainError) -> dict[str, Any]:
    """The REST error object."""
    return {"error": {**error.details, "code": error.code, "message": error.message}}


def ws_frame(error: DomainError) -> dict[str, Any]:
    """The WebSocket ``error`` frame (``retry_after`` included when there is one)."""
    frame = {**error.details, "type": "error", "code": error.code, "message": error.message}
    if error.retry_after is not None:
        frame["retry_after"] = error.retry_after
    return frame


def openai_type(status: int) -> str:
    return OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_body(error: DomainError, status: int | None = None) -> dict[str, Any]:
    """OpenAI's error object; ``code`` is BestChat's code, so it is our shape plus type/param."""
    return {"error": {**error.details, "message": error.message,
                      "type": openai_type(status or status_of(error)), "code": error.code,
                      "param": error.param}}


def json_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def http_response(error: DomainError) -> Response:
    """The REST response for ``error``."""
    return json_response(body_of(error), status_of(error), headers_of(error))


def _wants_html() -> bool:
    """Browser page navigations get HTML errors; every API path gets JSON."""
    if request.path.startswith(("/api/", "/v1/")) or request.path in ("/healthz", "/readyz"):
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def http_exception_response(app: Flask, error: HTTPException) -> Response:
    """werkzeug's own errors (405, 413, an unknown route...) in the REST shape."""
    status = error.code or 500
    message = error.description or error.name
    if status == 413:
        message = f"request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes"
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    return json_response({"error": {"code": HTTP_CODES.get(status, "error"), "message": message}},
                         status, headers)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        return http_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        if _wants_html():
            return error
        return http_exception_response(app, error)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return handle_http_exception(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"error": {"code": "internal_error", "message": "internal server error"}}, 500)
