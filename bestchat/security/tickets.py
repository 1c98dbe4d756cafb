"""Single-use WebSocket tickets: ``POST /api/v1/ws-ticket`` -> ``/ws?ticket=...``.

A ticket stands for the credentials of the request that asked for it (a web session or an API
token) for ``WS_TICKET_TTL`` seconds, once: so a client never needs to put its API token in a
URL, where access logs and proxies would keep it. Only the ticket's SHA-256 is stored, in Redis
when configured (any web process can redeem it) and in this process's memory in embedded mode.
Redeeming checks the credentials again: a ticket of a revoked token opens nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid

from flask import current_app

from bestchat.errors import Unauthorized
from bestchat.extensions import db
from bestchat.models import User
from bestchat.redis_client import get_redis
from bestchat.security.authn import SocketCredentials

PREFIX = "wst_"
REDIS_KEY = "bestchat:ws-ticket:"


class MemoryTickets:
    def __init__(self) -> None:
        self._tickets: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, value: str, ttl: int) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._tickets) > 10_000:  # drop expired tickets now and then
                self._tickets = {k: v for k, v in self._tickets.items() if v[0] > now}
            self._tickets[key] = (now + ttl, value)

    def take(self, key: str) -> str | None:
        with self._lock:
            deadline, value = self._tickets.pop(key, (0.0, None))
        return value if deadline > time.monotonic() else None


class RedisTickets:
    def __init__(self, client) -> None:
        self._redis = client

    def put(self, key: str, value: str, ttl: int) -> None:
        self._redis.set(REDIS_KEY + key, value, ex=ttl)

    def take(self, key: str) -> str | None:
        pipe = self._redis.pipeline(transaction=True)  # GET and DEL at once: single use
        pipe.get(REDIS_KEY + key)
        pipe.delete(REDIS_KEY + key)
        value, _ = pipe.execute()
        return value.decode() if isinstance(value, bytes) else value


def _store():
    app = current_app._get_current_object()
    store = app.extensions.get("bestchat_ws_tickets")
    if store is None:
        client = get_redis(app)
        store = app.extensions["bestchat_ws_tickets"] = RedisTickets(client) if client else MemoryTickets()
    return store


def _key(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue(credentials: SocketCredentials) -> tuple[str, int]:
    """A new ticket for ``credentials`` and its lifetime in seconds."""
    ttl = int(current_app.config["WS_TICKET_TTL"])
    ticket = PREFIX + secrets.token_urlsafe(32)
    value = json.dumps({"user_id": str(credentials.user_id), "role": credentials.role,
                        "session_generation": credentials.session_generation,
                        "token_id": str(credentials.token_id) if credentials.token_id else None})
    _store().put(_key(ticket), value, ttl)
    return ticket, ttl


def redeem(ticket: str) -> tuple[User, SocketCredentials]:
    """The account and credentials of ``ticket``, which is used up; :class:`Unauthorized`
    (``invalid_ticket``) for an unknown, expired, used or no longer valid one."""
    value = _store().take(_key(ticket)) if ticket.startswith(PREFIX) else None
    if value is not None:
        data = json.loads(value)
        credentials = SocketCredentials(
            uuid.UUID(data["user_id"]), data["role"], session_generation=data["session_generation"],
            token_id=uuid.UUID(data["token_id"]) if data["token_id"] else None)
        if credentials.still_valid():
            return db.session.get(User, credentials.user_id), credentials
    raise Unauthorized("invalid_ticket", "socket ticket is unknown, expired, used or no longer valid")
