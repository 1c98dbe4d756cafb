"""Requests take turns: each waits one turn of the event loop before it is served.

Under gunicorn's gevent worker a keep-alive connection is served by one greenlet in a loop:
read a request, answer it, read the next. When the client has sent its next request by the
time the answer is written (a busy client, a short request that does no I/O of its own, any
SQLite query: it blocks without yielding), the read finds it at once and the greenlet never
gives the loop back: that connection is served again and again while the other connections'
requests wait, some for seconds. :class:`TakeTurns` makes every request first sleep until the
loop's next iteration (a timer, not ``sleep(0)``, which may resume before the loop polls for
I/O), so connections whose requests are ready are served in turn.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import gevent

# Any positive sleep resumes on the loop's next iteration, after the I/O that is ready.
_ONE_TURN = 1e-6


class TakeTurns:
    """WSGI middleware: one loop turn before each request (see the module docstring)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        gevent.sleep(_ONE_TURN)
        return self.app(environ, start_response)


def serving_under_gevent() -> bool:
    """Whether this process runs on gevent's loop (its sockets patched: gunicorn's gevent worker)."""
    from gevent import monkey

    return monkey.is_module_patched("socket")
