"""Reading and checking client input, for every adapter (REST, WebSocket frames, ``/v1``):
JSON bodies and frames, fields, ids, pagination, query text.

Every failure is a domain error naming the field (:class:`~bestchat.errors.Invalid`, 400;
:class:`~bestchat.errors.UnsupportedMediaType`, 415; :class:`~bestchat.errors.NotFound` for a
malformed id), so no handler parses input itself.
Every JSON document a client sends (REST bodies, ``/v1`` bodies, WebSocket frames) is read by
:func:`parse_json`, which refuses what would fail later: malformed JSON, nesting deeper than
``MAX_JSON_DEPTH`` (400 ``json_too_deep``) and strings the databases cannot store, NUL or a
lone surrogate, in any key or value (400 ``invalid_text``, see :mod:`bestchat.text`). Request
bodies (REST and ``/v1``) must also be sent as ``Content-Type: application/json`` (415
``unsupported_media_type``): a cross-site form can post ``text/plain`` with the browser's
cookies, but not JSON. Query parameters get the same text check (:func:`check_query_text`),
and integers, from the URL or a body, must fit in 64 bits.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import request

from bestchat.errors import Invalid, NotFound, UnsupportedMediaType
from bestchat.text import is_storable

_MISSING = object()

MAX_JSON_DEPTH = 64
# The most files one message may attach.
MAX_ATTACHMENTS = 20
# Integers from URLs and bodies must fit the databases' and Redis's signed 64-bit integers.
MAX_INT = 2**63 - 1


def json_body() -> dict[str, Any]:
    """The request's JSON object: 415 unless sent as JSON, 400 as :func:`parse_json` says or
    when it is not an object."""
    data = request_json()
    if not isinstance(data, dict):
        raise Invalid("invalid_json", "request body must be a JSON object")
    return data


def request_json() -> Any:
    """The request's body as JSON (any value), checked by :func:`parse_json`; 415 when the
    request does not say it is JSON."""
    if not request.is_json:
        raise UnsupportedMediaType(None,
                                   "send the body as JSON, with Content-Type: application/json")
    raw = request.get_data(cache=True)
    if not raw:
        raise Invalid("invalid_json", "request body must be a JSON object")
    return parse_json(raw)


def parse_json(raw: str | bytes) -> Any:
    """``raw`` parsed; 400 ``invalid_json`` when malformed (``NaN`` and infinite numbers too),
    ``json_too_deep`` when nested deeper than ``MAX_JSON_DEPTH``, ``invalid_text`` when a key
    or a string cannot be stored."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw
        data = _DECODER.decode(text)
    except RecursionError:  # (nesting far deeper than the limit stops the parser itself)
        raise _too_deep() from None
    except ValueError:  # (undecodable bytes too: UnicodeDecodeError is a ValueError)
        raise Invalid("invalid_json", "not valid JSON") from None
    # Only an escape (or a surrogate sent raw) makes a string unstorable, and only that many
    # brackets can nest that deep: most documents need no walk at all.
    texts = "\\u" in text or not is_storable(text)
    if texts or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_json(data, texts)
    return data


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def _check_json(data: Any, texts: bool) -> None:
    """Walk ``data`` one nesting level at a time (no recursion on hostile input, and one
    regular-expression search per level for its strings and keys, when ``texts``)."""
    values, parents = [data], []
    for depth in range(MAX_JSON_DEPTH + 1):
        if texts:
            strings = [value for value in values if type(value) is str]
            if strings and not is_storable("".join(strings)):
                raise _unstorable(_culprit(parents))
        containers = [value for value in values if type(value) is dict or type(value) is list]
        if not containers:
            return
        if depth == MAX_JSON_DEPTH:
            raise _too_deep()
        values = []
        for container in containers:
            if type(container) is dict:
                if texts and not is_storable("".join(container)):
                    raise _unstorable("a key")
                values.extend(container.values())
            else:
                values.extend(container)
        parents = containers


def _culprit(parents: list[Any]) -> str:
    """Names the unstorable string among the items of ``parents`` (the body itself if none)."""
    if not parents:
        return "the body"
    for parent in parents:
        if type(parent) is dict:
            for key, value in parent.items():
                if type(value) is str and not is_storable(value):
                    return f"'{key[:100]}'"
    return "a string in a list"


def _too_deep() -> Invalid:
    return Invalid("json_too_deep", f"JSON is nested more than {MAX_JSON_DEPTH} levels deep")


def _unstorable(what: str) -> Invalid:
    return Invalid("invalid_text", f"{what} contains a NUL character or an unpaired surrogate "
                                         "(\\u0000, \\ud800-\\udfff), which cannot be stored")


def check_query_text() -> None:
    """400 ``invalid_text`` when a query parameter holds NUL or a lone surrogate (every
    ``/api/v1`` request, before its view)."""
    for name, value in request.args.items(multi=True):
        if not (is_storable(name) and is_storable(value)):
            raise _unstorable(f"the query parameter '{name[:50]}'")


def field(body: dict, name: str, kind: type | tuple = str, *, required: bool = True,
          default: Any = None, max_length: int | None = None, strip: bool = True) -> Any:
    """One field of ``body``, type-checked; 400 ``missing_field`` or ``invalid_field``."""
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise Invalid("missing_field", f"'{name}' is required")
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise Invalid("invalid_field", f"'{name}' must be of type {names}")
    if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
        raise Invalid("invalid_field", f"'{name}' is out of range")
    if isinstance(value, str):
        if strip:
            value = value.strip()
        if required and not value:
            raise Invalid("missing_field", f"'{name}' must not be empty")
        if max_length is not None and len(value) > max_length:
            raise Invalid("invalid_field", f"'{name}' is longer than {max_length} characters")
    return value


def parse_uuid(value: str, what: str = "resource") -> uuid.UUID:
    """An id from a URL; a malformed one is simply not found."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(what) from None


def int_arg(name: str, default: int, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """The integer query parameter ``name`` (``default`` when absent); 400 ``invalid_parameter``
    when it is not an integer in ``minimum..maximum``."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid("invalid_parameter", f"'{name}' must be an integer") from None
    if value < minimum or value > maximum:
        raise Invalid("invalid_parameter", f"'{name}' is out of range")
    return value
