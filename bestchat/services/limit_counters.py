"""Running totals behind the tokens-per-day and cost-per-month limits, kept in Redis.

One counter per user per UTC day (tokens, prompt + completion) and per UTC calendar month
(known cost, in whole micro-dollars so that Redis adds integers), each expiring after its
window. :func:`record` is registered with :func:`bestchat.services.usage_events.on_usage` at
app start and adds what a job just recorded. A counter that is missing (a new window, or Redis
restarted) is seeded from the database's sum of ``usage_logs`` with ``SET NX`` before anything
is decided from it, so the totals never start again from zero. Without Redis the admission
reads the database sums directly (:func:`bestchat.services.limits.tokens_since`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal

from flask import Flask

from bestchat.services import limits, usage_events

log = logging.getLogger(__name__)

TOKENS = "bc:lim:tokens:"
COST = "bc:lim:cost:"
MINUTE = "bc:lim:rpm:"
# Seconds a counter outlives its window (so a late reader still finds it).
DAY_TTL = 2 * 86400
MONTH_TTL = 33 * 86400

# Adds to each counter that exists, in one round trip (a missing one is seeded from the
# database instead, which already holds what is being added). KEYS: the tokens and cost
# counters; ARGV: their amounts, then their ttls. Returns, per counter, 1 if it was added to.
_ADD = """
local added = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('INCRBY', key, ARGV[i])
    redis.call('EXPIRE', key, ARGV[i + #KEYS])
    added[i] = 1
  else
    added[i] = 0
  end
end
return added
"""


def tokens_key(user_id: str, now: datetime) -> str:
    return f"{TOKENS}{user_id}:{now:%Y%m%d}"


def cost_key(user_id: str, now: datetime) -> str:
    return f"{COST}{user_id}:{now:%Y%m}"


def minute_key(user_id: str, now: datetime) -> str:
    return f"{MINUTE}{user_id}:{now:%Y%m%d%H%M}"


def seed(client, kind: str, user_id: str, now: datetime) -> None:
    """Set the counter of ``kind`` (tokens_per_day or cost_per_month) of the window holding
    ``now`` from the database, unless it exists meanwhile."""
    if kind == "tokens_per_day":
        client.set(tokens_key(user_id, now), limits.tokens_since(user_id, limits.day_start(now)),
                   nx=True, ex=DAY_TTL)
    else:
        cost, _ = limits.cost_since(user_id, limits.month_start(now))
        client.set(cost_key(user_id, now), limits.micro(cost), nx=True, ex=MONTH_TTL)


def record(user_id: uuid.UUID, tokens: int, cost: Decimal) -> None:
    """Add one recorded usage to the user's counters (the ``on_usage`` callback)."""
    from bestchat.redis_client import get_redis

    client = get_redis()
    if client is None:
        return
    uid, now = str(user_id), limits.utcnow()
    keys = [tokens_key(uid, now), cost_key(uid, now)]
    added = _add_script(client)(keys=keys, args=[int(tokens), limits.micro(cost or 0), DAY_TTL, MONTH_TTL],
                                client=client)
    for kind, was_added in zip(("tokens_per_day", "cost_per_month"), added):
        if not was_added:
            seed(client, kind, uid, now)


def _add_script(client):
    """:data:`_ADD`, registered once per process (a script runs on whichever client is given)."""
    global _add
    if _add is None:
        _add = client.register_script(_ADD)
    return _add


_add = None


def init_limit_counters(app: Flask) -> None:
    """Keep the counters up to date (:func:`record` does nothing for an app without Redis)."""
    usage_events.on_usage(record)
