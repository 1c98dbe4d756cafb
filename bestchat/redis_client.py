"""The process's Redis connection pool (None in embedded mode), created once per app.

A *blocking* pool: past ``REDIS_MAX_CONNECTIONS`` a greenlet waits up to
``REDIS_POOL_TIMEOUT`` seconds for a free connection instead of failing with "Too many
connections" (hundreds of generation greenlets share one pool in a gevent worker).
:func:`run_commands` runs a few commands in one round trip on it (:func:`exchange`).
"""

from __future__ import annotations

from typing import Any, Sequence

import redis
from flask import Flask, current_app


# RESP2. With RESP3 (redis-py 8's default) pub/sub messages arrive as push notifications, and
# hiredis 3.3's parser keeps part of each one for good: a web process relaying chunks would grow
# without bound (tests/test_bus.py checks it; RESP2 replies carry the same values).
PROTOCOL = 2


def init_redis(app: Flask) -> None:
    url = app.config["REDIS_URL"]
    if not url:
        app.extensions["bestchat_redis"] = None
        return
    pool = redis.BlockingConnectionPool.from_url(
        url, protocol=PROTOCOL, decode_responses=True, health_check_interval=30, socket_connect_timeout=2,
        socket_timeout=5, max_connections=app.config["REDIS_MAX_CONNECTIONS"],
        timeout=app.config["REDIS_POOL_TIMEOUT"],
    )
    app.extensions["bestchat_redis"] = redis.Redis(connection_pool=pool)


def get_redis(app: Flask | None = None) -> redis.Redis | None:
    return (app or current_app).extensions.get("bestchat_redis")


def exchange(connection: redis.connection.Connection, commands: Sequence[tuple[str, ...]]) -> list[Any]:
    """Send ``commands`` in one write on ``connection`` and read every reply, in order: what a
    non-transactional pipeline does, without the bookkeeping of redis-py's pipeline object,
    which costs more than the round trip. A command's own error is its reply (the connection stays in step); a
    connection error disconnects it and is raised (how much ran is unknown)."""
    replies: list[Any] = []
    try:
        connection.send_packed_command(connection.pack_commands(commands))
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as error:
                replies.append(error)
    except BaseException:
        connection.disconnect()
        raise
    return replies


def run_commands(client: redis.Redis, commands: Sequence[tuple[str, ...]]) -> list[Any]:
    """:func:`exchange` on one of ``client``'s pooled connections; a command's own error is
    raised (after every reply is read)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        replies = exchange(connection, commands)
    finally:
        pool.release(connection)
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies
