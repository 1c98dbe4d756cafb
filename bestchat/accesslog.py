"""The access log of ``bestchat serve`` (gunicorn), with credentials taken out of it.

A client may still open the WebSocket as ``/ws?token=bc_...`` (the public contract), and a
ticket (``?ticket=``) is a credential for its short life: their values are replaced by
``[redacted]`` in every value a log format can name (the request line, the query string, the
referrer, environ values) before gunicorn writes the line, and ``Authorization`` and ``Cookie``
headers are replaced whole.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
# A credential parameter's value in a URL or query string (any case, up to the next & # space).
_SECRET_PARAMETER = re.compile(r"((?:^|[?&;])(?:token|ticket|access_token|api_key)=)[^&#\s]*", re.IGNORECASE)
_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{proxy-authorization}i")


def redact(text: str | None) -> str | None:
    """``text`` with the value of every credential parameter replaced."""
    return _SECRET_PARAMETER.sub(lambda m: m.group(1) + REDACTED, text) if text else text


class RedactingLogger(Logger):
    """gunicorn's logger, minus credentials in URLs and headers (``--logger-class``)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():  # the request line, query, referrer, environ values...
            if isinstance(value, str) and "=" in value:
                atoms[name] = redact(value)
        for name in _SECRET_HEADERS:
            if name in atoms:
                atoms[name] = REDACTED
        return atoms
