"""The one JSON error shape of the API, and the handlers that give every error that shape.

``{"error": {"code": "...", "message": "..."}}`` with the right status; never an HTML page or
a traceback. Raise :class:`ApiError` anywhere in a request to answer with it.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Codes for werkzeug's own exceptions, by status.
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "rate_limited", 500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered to the client as JSON with ``status``; ``details`` are more fields of
    the error object for clients to act on (e.g. a limit's value)."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details or {}


def not_found(what: str = "resource") -> ApiError:
    """The answer for unknown ids and other users' ids alike."""
    return ApiError(404, "not_found", f"{what} not found")


def account_disabled() -> ApiError:
    """The answer to a disabled account's requests."""
    return ApiError(403, "account_disabled", "this account is disabled")


def error_response(status: int, code: str, message: str, headers: dict | None = None,
                   details: dict | None = None):
    response = jsonify({"error": {**(details or {}), "code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _wants_html() -> bool:
    """Browser page navigations get HTML errors; every API path gets JSON."""
    path = request.path
    if path.startswith(("/api/", "/v1/")) or path in ("/healthz", "/readyz", "/metrics"):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError):
        return error_response(error.status, error.code, error.message, error.headers, error.details)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        if _wants_html():
            return error
        status = error.code or 500
        code = _HTTP_CODES.get(status, "error")
        message = error.description or error.name
        if status == 413:
            message = f"request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes"
        headers = {}
        if status == 405 and getattr(error, "valid_methods", None):
            headers["Allow"] = ", ".join(error.valid_methods)
        return error_response(status, code, message, headers)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return handle_http_exception(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
