"""The process's Redis connection pool (None in embedded mode), created once per app.

A *blocking* pool: past ``REDIS_MAX_CONNECTIONS`` a greenlet waits up to
``REDIS_POOL_TIMEOUT`` seconds for a free connection instead of failing with "Too many
connections" (hundreds of generation greenlets share one pool in a gevent worker).
"""

from __future__ import annotations

import redis
from flask import Flask, current_app


def init_redis(app: Flask) -> None:
    url = app.config["REDIS_URL"]
    if not url:
        app.extensions["bestchat_redis"] = None
        return
    pool = redis.BlockingConnectionPool.from_url(
        url, decode_responses=True, health_check_interval=30, socket_connect_timeout=2,
        socket_timeout=5, max_connections=app.config["REDIS_MAX_CONNECTIONS"],
        timeout=app.config["REDIS_POOL_TIMEOUT"],
    )
    app.extensions["bestchat_redis"] = redis.Redis(connection_pool=pool)


def get_redis(app: Flask | None = None) -> redis.Redis | None:
    return (app or current_app).extensions.get("bestchat_redis")
