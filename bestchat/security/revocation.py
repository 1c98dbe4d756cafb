"""Telling every web process that an account's credentials changed, so that its open
WebSockets check theirs again at once (a token revoked, sessions ended, the role changed, the
account disabled or deleted).

The notice travels on the stream bus like a conversation's live events, on one channel per
account (``user:<id>``): the in-memory bus in embedded mode, Redis pub/sub across every web
process otherwise. It carries no secret and no verdict: each socket re-checks its own
credentials against the database, so a lost notice (Redis briefly down) only delays the close
until the socket's next periodic check (``WS_AUTH_RECHECK``).
"""

from __future__ import annotations

import logging
import uuid

from bestchat.streaming import get_bus

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "user:"
AUTH_CHANGED = "auth.changed"


def channel(user_id: uuid.UUID | str) -> str:
    return f"{CHANNEL_PREFIX}{user_id}"


def announce(user_id: uuid.UUID | str) -> None:
    """Ask every socket of ``user_id`` to re-check its credentials (call after the commit)."""
    try:
        get_bus().broadcast(channel(user_id), {"type": AUTH_CHANGED})
    except Exception as error:  # noqa: BLE001 - the periodic re-check still closes the socket
        log.warning("could not announce a credentials change of %s: %s", user_id, error)
