"""What the domain records about the request being served (the client's address), handed over
by the adapter, so that services never read ``flask.request``.

:func:`init_request_facts` installs the adapter side: before every HTTP request the app serves
(REST, ``/v1``, the web pages, the admin console, the WebSocket's opening request) the facts are
taken from the request, and they are dropped when it ends. Outside a request (the command line,
a worker, a service called directly) :func:`current` gives :data:`NO_REQUEST`: no address.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from flask import Flask, request


@dataclass(frozen=True)
class RequestFacts:
    """The facts of one request."""

    ip: str | None = None  # the client's address (the proxies' view with TRUSTED_PROXY_COUNT)


NO_REQUEST = RequestFacts()
_current: ContextVar[RequestFacts] = ContextVar("bestchat_request_facts", default=NO_REQUEST)


def current() -> RequestFacts:
    """The facts of the request being served here, or :data:`NO_REQUEST`."""
    return _current.get()


def init_request_facts(app: Flask) -> None:
    """Take each request's facts before the blueprints' hooks run, and drop them when it ends."""

    @app.before_request
    def _take_request_facts() -> None:
        _current.set(RequestFacts(ip=request.remote_addr))

    @app.teardown_request
    def _drop_request_facts(_error: BaseException | None = None) -> None:
        _current.set(NO_REQUEST)
