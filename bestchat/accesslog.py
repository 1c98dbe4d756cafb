"""The access log of ``bestchat serve`` (gunicorn), with credentials taken out of it.

A client may still open the WebSocket as ``/ws?token=bc_...`` (the public contract), and a
ticket (``?ticket=``) is a credential for its short life: their values are replaced
(:func:`bestchat.redaction.redact_url_credentials`) in every value a log format can name (the
request line, the query string, the referrer, environ values) before gunicorn writes the line,
and ``Authorization`` and ``Cookie`` headers are replaced whole.

Every request writes a line, so only the atoms the configured ``access_log_format`` names are
built (gunicorn's own ``atoms`` builds one per request header, response header and environ
value, each then scanned for credentials); they have gunicorn's values.
"""

from __future__ import annotations

import os
import re
from typing import Any

from gunicorn.glogging import Logger

from bestchat.redaction import REDACTED, redact_url_credentials

_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{proxy-authorization}i")
_ATOM = re.compile(r"%\(([^)]+)\)")


class RedactingLogger(Logger):
    """gunicorn's logger, minus credentials in URLs and headers (``--logger-class``)."""

    _named: tuple[str, frozenset[str], frozenset[str]] = ("", frozenset(), frozenset())

    def atoms(self, resp, req, environ, request_time) -> dict[str, Any]:
        plain, braced = self._atoms_named()
        atoms = _plain_atoms(self, plain, resp, environ, request_time)
        if braced:
            atoms.update(_braced_atoms(braced, resp, req, environ))
        for name, value in atoms.items():  # the request line, query, referrer, environ values...
            if isinstance(value, str) and "=" in value:
                atoms[name] = redact_url_credentials(value)
        for name in _SECRET_HEADERS:
            if name in atoms:
                atoms[name] = REDACTED
        return atoms

    def _atoms_named(self) -> tuple[frozenset[str], frozenset[str]]:
        """The atoms the log format names: plain ones (``h``, ``r``...) and ``{name}i/o/e`` ones
        (lower case, as gunicorn looks them up); parsed once per format."""
        log_format = self.cfg.access_log_format
        if self._named[0] != log_format:
            names = _ATOM.findall(log_format)
            self._named = (log_format, frozenset(n for n in names if not n.startswith("{")),
                           frozenset(n.lower() for n in names if n.startswith("{")))
        return self._named[1], self._named[2]


def _plain_atoms(logger: Logger, names: frozenset[str], resp, environ, request_time) -> dict[str, Any]:
    """gunicorn's single-letter atoms among ``names``, with gunicorn's values."""
    atoms: dict[str, Any] = {}
    for name in names:
        if name == "h":
            atoms[name] = environ.get("REMOTE_ADDR", "-")
        elif name == "l":
            atoms[name] = "-"
        elif name == "u":
            atoms[name] = logger._get_user(environ) or "-"
        elif name == "t":
            atoms[name] = logger.now()
        elif name == "r":
            atoms[name] = f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
        elif name == "s":
            status = resp.status
            atoms[name] = status.split(None, 1)[0] if isinstance(status, str) else status
        elif name in _ENVIRON_ATOMS:
            atoms[name] = environ.get(*_ENVIRON_ATOMS[name])
        elif name == "b":
            atoms[name] = getattr(resp, "sent", None) is not None and str(resp.sent) or "-"
        elif name == "B":
            atoms[name] = getattr(resp, "sent", None)
        elif name == "T":
            atoms[name] = request_time.seconds
        elif name == "D":
            atoms[name] = request_time.seconds * 1000000 + request_time.microseconds
        elif name == "M":
            atoms[name] = request_time.seconds * 1000 + int(request_time.microseconds / 1000)
        elif name == "L":
            atoms[name] = "%d.%06d" % (request_time.seconds, request_time.microseconds)
        elif name == "p":
            atoms[name] = f"<{os.getpid()}>"
    return atoms


_ENVIRON_ATOMS = {"m": ("REQUEST_METHOD",), "U": ("PATH_INFO",), "q": ("QUERY_STRING",),
                  "H": ("SERVER_PROTOCOL",), "f": ("HTTP_REFERER", "-"), "a": ("HTTP_USER_AGENT", "-")}


def _braced_atoms(names: frozenset[str], resp, req, environ) -> dict[str, Any]:
    """The ``{header}i``, ``{header}o`` and ``{variable}e`` atoms among ``names`` (the last
    value wins where a header repeats, as in gunicorn)."""
    atoms: dict[str, Any] = {}
    request_headers = req.headers if hasattr(req, "headers") else req
    for source, suffix in ((request_headers, "i"), (resp.headers, "o"), (environ, "e")):
        for key, value in (source.items() if hasattr(source, "items") else source):
            name = f"{{{key.lower()}}}{suffix}"
            if name in names:
                atoms[name] = value
    return atoms
