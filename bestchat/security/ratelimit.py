"""Fixed-window rate limits: Redis-backed when Redis is configured, in-process otherwise.

``limit(rule, key)`` counts one hit and raises 429 with ``Retry-After`` past the rule.
Rules are strings ``"count/seconds"`` from settings.
"""

from __future__ import annotations

import threading
import time

from flask import Flask, current_app

from bestchat.errors import ApiError
from bestchat.redis_client import get_redis


class MemoryLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, count: int, seconds: int) -> int:
        """Count a hit; return 0 if allowed, else seconds until the window resets."""
        now = time.monotonic()
        with self._lock:
            if len(self._windows) > 100_000:  # drop expired windows now and then
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            reset, hits = self._windows.get(key, (now + seconds, 0))
            if reset <= now:
                reset, hits = now + seconds, 0
            hits += 1
            self._windows[key] = (reset, hits)
        return 0 if hits <= count else max(1, int(reset - now + 0.999))


class RedisLimiter:
    def __init__(self, client) -> None:
        self._redis = client

    def hit(self, key: str, count: int, seconds: int) -> int:
        name = f"bestchat:rl:{key}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, seconds, nx=True)
        pipe.ttl(name)
        hits, _, ttl = pipe.execute()
        return 0 if hits <= count else max(1, int(ttl))


def init_rate_limiter(app: Flask) -> None:
    client = get_redis(app)
    app.extensions["bestchat_limiter"] = RedisLimiter(client) if client else MemoryLimiter()


def parse_rule(rule: str) -> tuple[int, int]:
    count, seconds = rule.split("/")
    return int(count), int(seconds)


def limit(setting: str, key: str) -> None:
    """Count one hit against the rule in setting ``setting`` for ``key``; 429 past it."""
    count, seconds = parse_rule(current_app.config[setting])
    retry_after = current_app.extensions["bestchat_limiter"].hit(f"{setting}:{key}", count, seconds)
    if retry_after:
        raise ApiError(429, "rate_limited", f"too many attempts; retry in {retry_after} s",
                       {"Retry-After": str(retry_after)})
