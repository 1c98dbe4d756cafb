"""Tools for the tests of the tools' REST, WebSocket and web UI adapters: module-level functions
(the sandboxed runner imports them by module and name), one per risk level, and a plugin that
registers them.

``fetch_local`` reads a page over HTTP and refuses anything but a loopback address, so a test
that uses it can never send a packet off the machine.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from urllib.parse import urlsplit

from bestchat.hookspecs import hookimpl
from bestchat.tools.base import tool


def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@tool(risk="medium")
def shout(text: str) -> str:
    """Say ``text`` in capitals."""
    return text.upper()


@tool(risk="high")
def wipe(target: str) -> str:
    """Pretend to delete ``target`` (a high-risk tool that does nothing)."""
    return f"kept {target}"


@tool(risk="medium", network=True, timeout=10)
def fetch_local(url: str) -> str:
    """Fetch a page from a server on this machine (127.0.0.1 only) and return its text."""
    host = urlsplit(url).hostname or ""
    if urlsplit(url).scheme != "http" or not ipaddress.ip_address(host).is_loopback:
        raise ValueError("only http://127.0.0.1 addresses")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only, checked above
        return response.read(10_000).decode("utf-8", "replace")


TOOLS = (add, shout, wipe, fetch_local)


class WebToolsPlugin:
    @hookimpl
    def register_tools(self, register):
        for function in TOOLS:
            register(function)


@hookimpl
def register_tools(register):
    """As a module-level plugin too (the live server of the browser tests loads it this way)."""
    WebToolsPlugin().register_tools(register)
