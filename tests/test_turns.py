"""Keep-alive connections take turns (``bestchat.turns``): a connection with requests queued
up does not hold the server while another connection's request waits."""

from __future__ import annotations

import gevent
from gevent import socket
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from bestchat.turns import TakeTurns


def _serve_in_order(middleware):
    """A server whose app records the order it serves paths in; ``/a1`` waits for ``release``."""
    served: list[str] = []
    a1_started, release = Event(), Event()

    def app(environ, start_response):
        path = environ["PATH_INFO"].lstrip("/")
        if path == "a1":
            a1_started.set()
            release.wait()
        served.append(path)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), middleware(app), log=None, error_log=None)
    server.start()
    return server, served, a1_started, release


def _requests(*paths: str) -> bytes:
    return b"".join(f"GET /{path} HTTP/1.1\r\nHost: test\r\n\r\n".encode() for path in paths)


def _read_responses(sock, count: int) -> int:
    data = b""
    while data.count(b"HTTP/1.1 200 OK") < count or not data.endswith(b"ok"):
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        data += chunk
    return data.count(b"HTTP/1.1 200 OK")


def _order(middleware) -> list[str]:
    """Connection A sends five requests at once; while its first is being served, connection B
    sends one. Returns the order the server served them in."""
    server, served, a1_started, release = _serve_in_order(middleware)
    try:
        a = socket.create_connection(server.address)
        a.sendall(_requests("a1", "a2", "a3", "a4", "a5"))
        a1_started.wait(timeout=10)
        b = socket.create_connection(server.address)
        b.sendall(_requests("b1"))
        release.set()
        with gevent.Timeout(10):
            assert _read_responses(a, 5) == 5
            assert _read_responses(b, 1) == 1
        a.close()
        b.close()
        return served
    finally:
        server.stop()


def test_a_waiting_connection_is_served_between_another_ones_queued_requests():
    order = _order(TakeTurns)
    assert sorted(order) == ["a1", "a2", "a3", "a4", "a5", "b1"]
    assert order.index("b1") < order.index("a5")


def test_without_turns_a_busy_connection_holds_the_server():
    # What the middleware is for: the same exchange, served without it, makes B wait for all of A.
    assert _order(lambda app: app) == ["a1", "a2", "a3", "a4", "a5", "b1"]
