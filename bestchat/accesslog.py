"""The access log of ``bestchat serve`` (gunicorn), with credentials taken out of it.

A client may still open the WebSocket as ``/ws?token=bc_...`` (the public contract), and a
ticket (``?ticket=``) is a credential for its short life: their values are replaced
(:func:`bestchat.redaction.redact_url_credentials`) in every value a log format can name (the
request line, the query string, the referrer, environ values) before gunicorn writes the line,
and ``Authorization`` and ``Cookie`` headers are replaced whole.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from bestchat.redaction import REDACTED, redact_url_credentials

_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{proxy-authorization}i")


class RedactingLogger(Logger):
    """gunicorn's logger, minus credentials in URLs and headers (``--logger-class``)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():  # the request line, query, referrer, environ values...
            if isinstance(value, str) and "=" in value:
                atoms[name] = redact_url_credentials(value)
        for name in _SECRET_HEADERS:
            if name in atoms:
                atoms[name] = REDACTED
        return atoms
