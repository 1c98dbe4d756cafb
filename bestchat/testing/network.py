"""Keeps a test's packets on loopback: name lookups other than ``localhost`` fail and
connections to non-loopback addresses are refused before anything is sent.

For tests of outbound checks (``bestchat.security.outbound``): if the code under test ever
stopped checking or pinning, the test fails instead of reaching DNS, a metadata service or a
vendor.
"""

from __future__ import annotations

import ipaddress
import socket

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def loopback_only(monkeypatch) -> None:
    """Patch ``socket`` (with pytest's ``monkeypatch``) so only loopback can be reached."""
    resolve, connect = socket.getaddrinfo, socket.socket.connect

    def local_getaddrinfo(host, *args, **kwargs):
        if host not in LOCAL_NAMES:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no DNS in this test")
        return resolve(host, *args, **kwargs)

    def local_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and \
                not ipaddress.ip_address(address[0].split("%", 1)[0]).is_loopback:
            raise ConnectionRefusedError(f"{address[0]}: not loopback")
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", local_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", local_connect)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
