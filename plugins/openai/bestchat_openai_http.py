"""The ``openai`` provider's streaming transport: POST a JSON body, read the answer's bytes as
they arrive, over keep-alive HTTP/1.1 connections pooled per origin.

Why not httpx for this one request: on a streamed answer every token is one network read, and
httpx spends more CPU per read in its layers (httpcore, h11, the byte/text/line iterators) than
the standard library's ``http.client`` used directly. At hundreds of concurrent streams per worker, that per-read cost is
what the worker's CPU goes to. Everything else (errors, model
lists, proxies) stays on httpx: :func:`bestchat.providers.discovery.proxied` tells the provider when a proxy applies to the
origin, and the provider then uses httpx, which honours the proxy environment variables.

Connections are opened through the caller's outbound policy (``bestchat.security.outbound``):
the host is resolved and checked once per connection, and the socket connects to the checked
address, while TLS verifies the certificate for the host name (SNI) and ``Host`` stays the
name. An idle connection is reused only for a caller whose policy permits its peer address
(the pool is shared by every config with the same base URL, trusted or not).

The pool keeps at most ``MAX_IDLE`` idle connections per origin. A connection goes back to it
only after its response was read to the end; a stale one (closed by the server while idle) is
detected when sending on it fails before any answer, and the request is retried once on a
fresh connection.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections import deque
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

from bestchat.plugin_api import OutboundPolicy as Policy

MAX_IDLE = 100
READ_SIZE = 65536

# Sending on a kept-alive connection the server has closed fails with one of these.
_STALE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError,
          ConnectionResetError, ConnectionAbortedError)



class ConnectFailed(Exception):
    """The connection to the origin could not be opened (refused, unreachable, timed out)."""


_pools: dict[str, Pool] = {}
_pools_lock = threading.Lock()


def pool_for(base_url: str) -> Pool:
    """The process-wide pool of ``base_url``'s origin (created on first use)."""
    with _pools_lock:
        pool = _pools.get(base_url)
        if pool is None:
            pool = _pools[base_url] = Pool(base_url)
        return pool


class Pool:
    """Idle keep-alive connections to one origin, and the path prefix of ``base_url``."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/") + "/"
        self._idle: deque[http.client.HTTPConnection] = deque()
        self._lock = threading.Lock()
        self._ssl = ssl.create_default_context() if self.https else None

    @contextmanager
    def post(self, path: str, body: bytes, headers: dict[str, str], *,
             connect_timeout: float, read_timeout: float, policy: Policy) -> Iterator[http.client.HTTPResponse]:
        """POST ``body`` to ``prefix + path`` and yield the response, headers read. The body is
        read by the caller (``read1``/``read``); the connection is pooled again only if it was
        read to the end. ``policy`` checks the address (OutboundRefused before any packet)."""
        connection, reused = self._checkout(connect_timeout, read_timeout, policy)
        response = None
        try:
            try:
                response = self._send(connection, path, body, headers)
            except _STALE:
                if not reused:
                    raise
                connection.close()
                connection, _ = self._checkout(connect_timeout, read_timeout, policy, fresh=True)
                response = self._send(connection, path, body, headers)
            yield response
        finally:
            if response is not None and response.isclosed() and not response.will_close:
                self._checkin(connection)
            else:
                connection.close()

    def _send(self, connection: http.client.HTTPConnection, path: str, body: bytes,
              headers: dict[str, str]) -> http.client.HTTPResponse:
        connection.request("POST", self.prefix + path, body=body, headers=headers)
        return connection.getresponse()

    def _checkout(self, connect_timeout: float, read_timeout: float, policy: Policy, *,
                  fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        if not fresh:
            connection = self._idle_for(policy)
            if connection is not None:
                connection.sock.settimeout(read_timeout)
                return connection, True
        if self.https:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=connect_timeout,
                                                     context=self._ssl)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=connect_timeout)
        # http.client's connect() opens its socket with this function: resolve, check, pin.
        connection._create_connection = policy.create_connection
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise ConnectFailed(type(error).__name__) from None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sock.settimeout(read_timeout)
        connection.peer = connection.sock.getpeername()[0]
        return connection, False

    def _idle_for(self, policy: Policy) -> http.client.HTTPConnection | None:
        """An idle connection whose peer address ``policy`` permits (others stay idle)."""
        with self._lock:
            for index in range(len(self._idle) - 1, -1, -1):
                connection = self._idle[index]
                if connection.sock is None:
                    del self._idle[index]
                elif policy.permits_peer(self.host, connection.peer):
                    del self._idle[index]
                    return connection
        return None

    def _checkin(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()


def iter_lines(response: http.client.HTTPResponse) -> Iterator[str]:
    """The body's lines (without line ends) as they arrive; whatever framing the server uses
    (chunked, Content-Length or until close), http.client undoes it."""
    rest = b""
    while True:
        data = response.read1(READ_SIZE)
        if not data:
            break
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line.rstrip(b"\r").decode("utf-8", "replace")
    if rest:
        yield rest.rstrip(b"\r").decode("utf-8", "replace")
