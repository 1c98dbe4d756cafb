"""Reading and checking request input: JSON bodies, fields, ids, pagination.

Every failure is an :class:`ApiError` 400 naming the field, so no handler parses input itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import request

from bestchat.errors import ApiError, not_found

_MISSING = object()


def json_body() -> dict[str, Any]:
    """The request's JSON object, or 400 ``invalid_json``."""
    data = request.get_json(force=True, silent=True)
    if data is None and request.content_length is not None and request.content_length > 0:
        raise ApiError(400, "invalid_json", "request body is not valid JSON")
    if data is None:
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    return data


def field(body: dict, name: str, kind: type | tuple = str, *, required: bool = True,
          default: Any = None, max_length: int | None = None, strip: bool = True) -> Any:
    """One field of ``body``, type-checked; 400 ``missing_field`` or ``invalid_field``."""
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise ApiError(400, "missing_field", f"'{name}' is required")
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ApiError(400, "invalid_field", f"'{name}' must be of type {names}")
    if isinstance(value, str):
        if strip:
            value = value.strip()
        if required and not value:
            raise ApiError(400, "missing_field", f"'{name}' must not be empty")
        if max_length is not None and len(value) > max_length:
            raise ApiError(400, "invalid_field", f"'{name}' is longer than {max_length} characters")
    return value


def parse_uuid(value: str, what: str = "resource") -> uuid.UUID:
    """An id from a URL; a malformed one is simply not found."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise not_found(what) from None


def int_arg(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ApiError(400, "invalid_parameter", f"'{name}' is out of range")
    return value
