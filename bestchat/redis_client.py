"""The process's Redis connection pool (None in embedded mode), created once per app."""

from __future__ import annotations

import redis
from flask import Flask, current_app


def init_redis(app: Flask) -> None:
    url = app.config["REDIS_URL"]
    app.extensions["bestchat_redis"] = (
        redis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                             socket_connect_timeout=2, socket_timeout=5)
        if url else None
    )


def get_redis(app: Flask | None = None) -> redis.Redis | None:
    return (app or current_app).extensions.get("bestchat_redis")
